/* Preloaded by scripts/sanitize.sh: dlclose does nothing, so the plugins MPI and hwloc load at
 * run time stay mapped until exit and LeakSanitizer can name the library a leak comes from
 * (scripts/lsan.supp suppresses theirs by name). Without it their leaks show as "unknown
 * module" and cannot be told from kiln's. */
#include <dlfcn.h>

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
