// File: mesh/agent/agent.h
//
// The mesh agent: the process that runs the embedded control plane. It reads
// and watches the config, keeps the last good snapshot, and serves it over
// ADS on a unix socket to the application's gRPC xDS client (or, run by hand
// as `mesh_agent`, to every proxyless client on a node).
//
// It runs outside the application's process because a gRPC server inside it
// would cost the application's own calls +27 to +69 % CPU (docs/
// architecture.md, "Why a separate process").
//
// Flags:
//   --config=PATH        mesh config file
//   --etcd=HOST:PORT[,...] --etcd-prefix=/mesh/ --etcd-ca= --etcd-cert=
//   --etcd-key= --etcd-server-name= --etcd-user= --etcd-password-file=
//                        etcd as a config source (docs/config.md, "etcd");
//                        --config, --etcd or both are required
//   --dns-server=IP[:PORT][,...]  DNS servers for `dns` entries (default:
//                        /etc/resolv.conf)
//   --state-dir=DIR      the last-known-good copy (optional)
//   --socket=PATH        unix socket to serve ADS on (required; its directory
//                        should be private, 0700)
//   --status-fd=N        write events (events.h) to this fd (optional)
//   --lifeline-fd=N      exit when this fd reaches EOF, i.e. when the
//                        application that spawned us is gone (optional;
//                        without it the agent runs until SIGTERM/SIGINT)
//   --service=NAME       the application's own service: its authorization
//                        policy is reported on the status fd (optional)
//   --register [--register-ttl=SECONDS] [--advertise=IP]
//                        register each address the application's mesh
//                        servers listen on as an instance of its service in
//                        etcd (registrar.h; needs --etcd); TTL default 10;
//                        --advertise is the address clients use for a
//                        server listening on a wildcard address
//   --cert=PATH --key=PATH --bundle=PATH (repeatable) --identity-dir=DIR
//                        the workload's SVID and trust bundles: checked,
//                        then kept in DIR for gRPC (identity/keeper.h);
//                        all or none

#ifndef MESH_AGENT_AGENT_H_
#define MESH_AGENT_AGENT_H_

namespace mesh {
namespace agent {

// Runs the agent; returns the process exit code: 0 on a clean stop, 2 for
// bad flags, 3 for an unusable initial config or identity, 4 if the socket
// cannot be served.
int RunAgent(int argc, char** argv);

// Environment variable that makes a program linked with mesh run RunAgent
// instead of its main(): set by the library when it re-executes its own
// binary as the agent.
inline constexpr char kAgentEnv[] = "MESH_INTERNAL_RUN_AGENT";

// Written by the application on the lifeline before it closes it when it
// destroys its Mesh but lives on: gRPC keeps reading the identity files, so
// the agent leaves them for the application to remove at exit.
inline constexpr char kKeepIdentity = 'K';

// Registration commands, one byte each on the lifeline (registrar.h): the
// application's servers are SERVING, NOT_SERVING, DRAINING; or deregister
// (revoke the lease: every instance goes now).
inline constexpr char kServing = 'S';
inline constexpr char kNotServing = 'N';
inline constexpr char kDraining = 'D';
inline constexpr char kDeregister = 'R';

}  // namespace agent
}  // namespace mesh

#endif  // MESH_AGENT_AGENT_H_
