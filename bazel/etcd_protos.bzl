"""The etcd v3 protos mesh compiles (read by BUILD and by CMakeLists.txt)."""

ETCD_PROTOS = [
    "etcd/auth/authpb/auth.proto",
    "etcd/etcdserver/etcdserverpb/rpc.proto",
    "etcd/mvcc/mvccpb/kv.proto",
]

ETCD_GRPC_PROTOS = [
    "etcd/etcdserver/etcdserverpb/rpc.proto",
]
