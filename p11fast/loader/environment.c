/* Where this library and its Python are: the package directory (package_dir), the Python the
 * wheel was installed into (a venv's base, a plain install's prefix, or the building Python for
 * a source tree), and its libpython.
 *
 * Environment: P11FAST_LIBPYTHON, when set, is the only libpython path tried (for Pythons
 * installed where the wheel's layout does not lead, and for tests). */
#include "python.h" /* first: Python.h sets the feature macros (_GNU_SOURCE) used below */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkcs11.h"

static int is_file(const char *path)
{
    return access(path, R_OK) == 0;
}

void path_up(char *path)
{
    char *slash = strrchr(path, '/');
    if (slash && slash != path)
        *slash = '\0';
    else if (slash)
        path[1] = '\0';
}

/* The `home` of a venv's pyvenv.cfg is the base Python's bin directory. */
static int venv_base(const char *cfg, char *base)
{
    char line[PATH_MAX + 32];
    int found = 0;
    FILE *f = fopen(cfg, "r");
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *key = line + strspn(line, " \t"), *value = strchr(key, '=');
        size_t keylen = strcspn(key, " \t=");
        if (!value || keylen != 4 || strncmp(key, "home", 4) != 0)
            continue;
        value += 1 + strspn(value + 1, " \t");
        value[strcspn(value, "\r\n")] = '\0';
        for (size_t n = strlen(value); n > 1 && (value[n - 1] == ' ' || value[n - 1] == '/'); n--)
            value[n - 1] = '\0';
        if (*value && realpath(value, base)) {
            path_up(base);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

static int has_stdlib(const char *prefix)
{
    char os_py[PATH_MAX];
    int n = snprintf(os_py, sizeof os_py, "%s/%s/os.py", prefix, P11FAST_PY_STDLIB_REL);
    return n > 0 && (size_t)n < sizeof os_py && is_file(os_py);
}

static int is_packages_dir(const char *site)
{
    const char *name = strrchr(site, '/');
    return name && (strcmp(name, "/site-packages") == 0 || strcmp(name, "/dist-packages") == 0);
}

/* Finds the Python the wheel was installed into, from this library's own path:
 * <site>/p11fast/libp11fast.so. A venv (pyvenv.cfg at most three levels above site-packages)
 * names its base Python; a plain install has site-packages at <prefix>/lib/pythonX.Y/; a
 * source tree or editable build has neither and uses the Python it was built with. */
static int find_environment(struct environment *env)
{
    Dl_info info;
    char dir[PATH_MAX], cfg[PATH_MAX + 16];
    if (!dladdr((void *)&C_GetFunctionList, &info) || !info.dli_fname ||
        strlen(info.dli_fname) >= sizeof env->self || !realpath(info.dli_fname, env->site)) {
        say("cannot find the path of libp11fast.so itself");
        return 0;
    }
    strcpy(env->self, info.dli_fname);
    path_up(env->site); /* the package */
    path_up(env->site); /* the directory holding it */

    strcpy(dir, env->site);
    for (int level = 0; level < 4; level++, path_up(dir)) {
        snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", dir);
        if (is_file(cfg) && venv_base(cfg, env->base) && has_stdlib(env->base)) {
            strcpy(env->prefix, dir);
            return 1;
        }
    }
    strcpy(dir, env->site);
    path_up(dir);
    path_up(dir);
    path_up(dir);
    env->source_tree = !(is_packages_dir(env->site) && has_stdlib(dir));
    strcpy(env->base, env->source_tree ? P11FAST_PY_BUILD_PREFIX : dir);
    strcpy(env->prefix, env->base);
    return 1;
}

void *open_libpython(const struct environment *env, int report, int flags)
{
    char path[PATH_MAX + 64];
    const char *forced = getenv("P11FAST_LIBPYTHON");
    const char *candidates[3];
    int count = 0;
    void *handle = NULL;

    if (forced && *forced) {
        candidates[count++] = forced;
    } else {
        snprintf(path, sizeof path, "%s/lib/%s", env->base, P11FAST_PY_LDLIBRARY);
        candidates[count++] = path;
        candidates[count++] = "libpython" P11FAST_PY_VERSION ".so.1.0";
        candidates[count++] = P11FAST_PY_LDLIBRARY;
    }
    for (int i = 0; i < count && !handle; i++)
        handle = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL | flags);
    if (!handle && report)
        say("cannot load libpython%s (%s): install a Python %s built with --enable-shared "
            "(Debian/Ubuntu: apt install libpython%s), or set P11FAST_LIBPYTHON to its path",
            P11FAST_PY_VERSION, dlerror(), P11FAST_PY_VERSION, P11FAST_PY_VERSION);
    return handle;
}

const struct environment *environment(void)
{
    static struct environment env;
    static int found;
    if (!found)
        found = find_environment(&env);
    return found ? &env : NULL;
}

int package_dir(char *out, unsigned long size)
{
    Dl_info info;
    char real[PATH_MAX];
    if (!dladdr((void *)&C_GetFunctionList, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, real) || strlen(real) >= size)
        return 0;
    path_up(real);
    strcpy(out, real);
    return 1;
}
