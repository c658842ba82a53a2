// mesh_agent: the embedded control plane as a standalone program, for a node
// agent that serves proxyless gRPC clients in any language. See agent.h.
#include "mesh/agent/agent.h"

int main(int argc, char** argv) { return mesh::agent::RunAgent(argc, argv); }
