// When the library re-executes its host program as the mesh agent, this
// constructor runs RunAgent instead of the program's main(). It runs before
// the program's own static constructors (priority 101) and leaves with
// _exit, so nothing of the host program runs in the agent.

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mesh/agent/agent.h"

namespace {

__attribute__((constructor(101))) void MeshAgentSelfExec(int argc,
                                                         char** argv,
                                                         char** /*envp*/) {
  const char* v = getenv(mesh::agent::kAgentEnv);
  if (v == nullptr || strcmp(v, "1") != 0) return;
  unsetenv(mesh::agent::kAgentEnv);
  _exit(mesh::agent::RunAgent(argc, argv));
}

}  // namespace
