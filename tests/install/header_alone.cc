// mesh/mesh.h compiles on its own with only the installed dependencies.
#include <mesh/mesh.h>
