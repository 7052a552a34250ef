/*
 * The `dlgsa` VapourSynth namespace: a thin native front for the Python filter.
 *
 * VapourSynth has no Python API to add functions to a core namespace, but it autoloads native
 * plugins from <site-packages>/vapoursynth/plugins. This plugin registers `dlgsa.Upscale` (with
 * the filter's full argument list, so scripts get VapourSynth's own argument checking and
 * `core.dlgsa.Upscale.signature`) and `dlgsa.Version`, and hands every Upscale call to the Python
 * implementation in the same process:
 *
 *   1. Upscale(in, out) pushes {in, out, core} on a thread-local stack of pending calls, takes
 *      the GIL and calls dlgsa_vs.vapoursynth._bridge.forward() through the CPython C API.
 *   2. forward() calls core.dlgsa.InternalBridge(impl=<python callable>) on the current Python
 *      environment's core; VapourSynth turns the callable into a VSFunction.
 *   3. InternalBridge finds the pending call on this thread, checks it was made on the same
 *      core, and runs callFunction(impl, in, out): the Python side reads the arguments, builds
 *      the graph and writes the clip (or an error) straight into Upscale's `out`.
 *
 * Lifetimes: the plugin keeps no per-core state and no references between calls. The VSFunction
 * that wraps the Python callable lives only for the duration of one InternalBridge call; the
 * nodes the Python side creates belong to the calling core like any filter's. So any number of
 * cores (vspipe, several VSScript environments, plain Python) can load the plugin, in any order,
 * and be freed in any order. The only process-wide state is the table of CPython entry points
 * below, resolved on first use.
 *
 * Python is not linked: its entry points are looked up at run time among the objects already
 * loaded in the process (python, libpython loaded by vspipe/VSScript): dlsym on Linux and macOS,
 * and on Windows GetProcAddress on the python3XY.dll (or python3.dll) that the process has loaded,
 * found by enumerating its modules. The plugin therefore
 * loads in any host; in a host without Python, Upscale fails with a clear error instead of the
 * whole plugin failing to load. Only stable-ABI functions are used, so one build serves every
 * Python 3 version. Built against VapourSynth API 4.0 so any API-4 core (R55 and later) loads it.
 */
#ifdef _WIN32
/* Windows (MSVC or mingw-w64): LoadLibrary-family calls, SRW locks, Interlocked atomics. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <psapi.h>
#else
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#ifdef __linux__
#include <link.h>
#endif
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "VapourSynth4.h"

#ifndef DLGSA_VS_VERSION
#define DLGSA_VS_VERSION "0.0.0"
#endif
#define PLUGIN_VERSION_MAJOR 1
#define PLUGIN_VERSION_MINOR 0

#define BRIDGE_MODULE "dlgsa_vs.vapoursynth._bridge"

/* The filter's arguments: dlgsa_vs/vapoursynth/filter.py's SIGNATURE, made from the option table
 * (RunSettings' fields); tests/test_options.py holds this list equal to it, names, order and types. */
static const char UPSCALE_ARGS[] =
    "clip:vnode;"
    "scale:int:opt;"
    "variant:data:opt;"
    "model_path:data:opt;"
    "backend:data:opt;"
    "device_index:int:opt;"
    "fp16:int:opt;"
    "tile_w:int:opt;"
    "tile_h:int:opt;"
    "tile_pad:int:opt;"
    "batch:int:opt;"
    "num_streams:int:opt;"
    "tlc:int:opt;"
    "kernels:data:opt;"
    "precision:data:opt;"
    "cpu_engine:data:opt;"
    "compile:int:opt;"
    "cuda_graphs:int:opt;"
    "threads:int:opt;"
    "reuse:data:opt;"
    "reuse_tolerance:int:opt;"
    "reuse_cache_mib:int:opt;"
    "matrix:int:opt;"
    "transfer:int:opt;"
    "primaries:int:opt;"
    "range:int:opt;"
    "fields_as_frames:int:opt;";

/* ------------------------------------------------------------------------------------------ */
/* CPython entry points, resolved at run time (stable ABI only; no Python.h needed).           */

typedef struct _object PyObject;
typedef ptrdiff_t Py_ssize_t;
typedef int PyGILState_STATE; /* an enum in Python.h */

static struct {
    int (*IsInitialized)(void);
    PyGILState_STATE (*GILState_Ensure)(void);
    void (*GILState_Release)(PyGILState_STATE);
    PyObject *(*Import_ImportModule)(const char *);
    PyObject *(*Object_GetAttrString)(PyObject *, const char *);
    PyObject *(*Object_CallNoArgs)(PyObject *);
    PyObject *(*Object_Str)(PyObject *);
    const char *(*Unicode_AsUTF8AndSize)(PyObject *, Py_ssize_t *);
    PyObject *(*Sys_GetObject)(const char *);
    void (*Err_Fetch)(PyObject **, PyObject **, PyObject **);
    void (*Err_NormalizeException)(PyObject **, PyObject **, PyObject **);
    void (*Err_Clear)(void);
    void (*DecRef)(PyObject *);
    PyObject *none; /* &_Py_NoneStruct */
    volatile int ok;
    char missing[64];
} py;

/* Portability: a statically initialised lock, acquire/release loads and stores of an int, and
 * thread-local storage, for POSIX/GCC/Clang and for Windows (MSVC has no __atomic builtins and,
 * before C11 mode, no _Thread_local). */
#ifdef _WIN32
typedef SRWLOCK plugin_lock_t;
#define PLUGIN_LOCK_INIT SRWLOCK_INIT
static void plugin_lock(plugin_lock_t *l) { AcquireSRWLockExclusive(l); }
static void plugin_unlock(plugin_lock_t *l) { ReleaseSRWLockExclusive(l); }
#else
typedef pthread_mutex_t plugin_lock_t;
#define PLUGIN_LOCK_INIT PTHREAD_MUTEX_INITIALIZER
static void plugin_lock(plugin_lock_t *l) { pthread_mutex_lock(l); }
static void plugin_unlock(plugin_lock_t *l) { pthread_mutex_unlock(l); }
#endif

#ifdef _MSC_VER
/* Interlocked operations are full barriers on every Windows target. */
static int load_acquire(volatile int *p) { return (int)InterlockedCompareExchange((volatile LONG *)p, 0, 0); }
static void store_release(volatile int *p, int v) { InterlockedExchange((volatile LONG *)p, (LONG)v); }
#define PLUGIN_THREAD_LOCAL __declspec(thread)
#else
static int load_acquire(volatile int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void store_release(volatile int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
#define PLUGIN_THREAD_LOCAL _Thread_local
#endif

/* Resolved under this lock until it succeeds (a host might load Python after a first failed call). */
static plugin_lock_t py_lock = PLUGIN_LOCK_INIT;

#ifdef _WIN32
/* Non-zero for python3.dll (2) or python3XY.dll / python3XY_d.dll (1), case-insensitively. */
static int python_dll_kind(const wchar_t *path) {
    const wchar_t *base = path;
    for (const wchar_t *c = path; *c; c++)
        if (*c == L'\\' || *c == L'/')
            base = c + 1;
    static const char prefix[] = "python3";
    size_t i = 0;
    for (; prefix[i]; i++) {
        wchar_t c = base[i];
        if (c >= L'A' && c <= L'Z')
            c = (wchar_t)(c - L'A' + L'a');
        if (c != (wchar_t)prefix[i])
            return 0;
    }
    size_t digits = 0;
    while (base[i] >= L'0' && base[i] <= L'9') {
        i++;
        digits++;
    }
    if (digits && (base[i] == L'_') && (base[i + 1] == L'd' || base[i + 1] == L'D'))
        i += 2;
    static const char ext[] = ".dll";
    for (size_t j = 0; ext[j]; j++, i++) {
        wchar_t c = base[i];
        if (c >= L'A' && c <= L'Z')
            c = (wchar_t)(c - L'A' + L'a');
        if (c != (wchar_t)ext[j])
            return 0;
    }
    if (base[i])
        return 0;
    return digits ? 1 : 2;
}

/* The Python DLL the process has loaded (python.exe, vspipe via VSScript, an embedding host), or
 * NULL. The versioned python3XY.dll is preferred; python3.dll (the stable-ABI forwarder) serves
 * when it is the only one. Modules are only looked at, never loaded: no reference is taken, and
 * the Python DLL stays loaded for as long as an interpreter can call into this plugin. */
static HMODULE find_python_dll(void) {
    HMODULE mods[1024];
    DWORD needed = 0;
    if (!EnumProcessModules(GetCurrentProcess(), mods, sizeof mods, &needed))
        return NULL;
    size_t n = needed / sizeof mods[0];
    if (n > sizeof mods / sizeof mods[0])
        n = sizeof mods / sizeof mods[0];
    HMODULE forwarder = NULL;
    for (size_t i = 0; i < n; i++) {
        wchar_t path[MAX_PATH];
        DWORD len = GetModuleFileNameW(mods[i], path, MAX_PATH);
        if (!len || len >= MAX_PATH)
            continue;
        int kind = python_dll_kind(path);
        if (!kind || !GetProcAddress(mods[i], "Py_IsInitialized"))
            continue;
        if (kind == 1)
            return mods[i];
        if (!forwarder)
            forwarder = mods[i];
    }
    return forwarder;
}

static void *lookup_symbol(void *handle, const char *name) {
    FARPROC p = GetProcAddress((HMODULE)handle, name);
    void *v;
    memcpy(&v, &p, sizeof v); /* data symbols (_Py_NoneStruct) come back as FARPROC too */
    return v;
}

/* Non-zero when Python was found; *handle is then what lookup_symbol takes. */
static int python_handle(void **handle) {
    *handle = (void *)find_python_dll();
    return *handle != NULL;
}
#else
#ifdef __linux__
static int find_libpython(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    const char *name = info->dlpi_name;
    const char *base = name ? strrchr(name, '/') : NULL;
    base = base ? base + 1 : name;
    if (base && strncmp(base, "libpython3", 10) == 0) {
        /* takes a reference that is never dropped: libpython stays loaded anyway */
        void *h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
        if (h) {
            *(void **)data = h;
            return 1;
        }
    }
    return 0;
}
#endif

static void *lookup_symbol(void *handle, const char *name) {
    return dlsym(handle, name);
}

/* Non-zero when Python was found; *handle is then what lookup_symbol takes (RTLD_DEFAULT, which
 * is NULL on glibc, or libpython's handle). */
static int python_handle(void **handle) {
    /* Symbols of the executable and of libraries loaded globally (python, vspipe's libpython). */
    *handle = RTLD_DEFAULT;
    if (dlsym(RTLD_DEFAULT, "Py_IsInitialized"))
        return 1;
    /* A host may have loaded libpython privately (RTLD_LOCAL): find it among loaded objects. */
    void *lib = NULL;
#ifdef __linux__
    dl_iterate_phdr(find_libpython, &lib);
#endif
    *handle = lib;
    return lib != NULL;
}
#endif

static void resolve_python_locked(void) {
    void *handle = NULL;
    if (!python_handle(&handle)) {
        snprintf(py.missing, sizeof py.missing, "Py_IsInitialized");
        return;
    }
#define SYM(field, name)                                                   \
    do {                                                                   \
        *(void **)(&py.field) = lookup_symbol(handle, name);               \
        if (!py.field) {                                                   \
            snprintf(py.missing, sizeof py.missing, "%s", name);           \
            return;                                                        \
        }                                                                  \
    } while (0)
    SYM(IsInitialized, "Py_IsInitialized");
    SYM(GILState_Ensure, "PyGILState_Ensure");
    SYM(GILState_Release, "PyGILState_Release");
    SYM(Import_ImportModule, "PyImport_ImportModule");
    SYM(Object_GetAttrString, "PyObject_GetAttrString");
    SYM(Object_CallNoArgs, "PyObject_CallNoArgs");
    SYM(Object_Str, "PyObject_Str");
    SYM(Unicode_AsUTF8AndSize, "PyUnicode_AsUTF8AndSize");
    SYM(Sys_GetObject, "PySys_GetObject");
    SYM(Err_Fetch, "PyErr_Fetch");
    SYM(Err_NormalizeException, "PyErr_NormalizeException");
    SYM(Err_Clear, "PyErr_Clear");
    SYM(DecRef, "Py_DecRef");
    SYM(none, "_Py_NoneStruct");
#undef SYM
    store_release(&py.ok, 1);
}

/* Non-zero when the CPython entry points are known. */
static int resolve_python(void) {
    if (load_acquire(&py.ok))
        return 1;
    plugin_lock(&py_lock);
    if (!py.ok) {
        py.missing[0] = 0;
        resolve_python_locked();
    }
    plugin_unlock(&py_lock);
    return load_acquire(&py.ok);
}

static void py_decref(PyObject *o) {
    if (o)
        py.DecRef(o);
}

/* str(o) into buf; "" if that fails. Needs the GIL. */
static void py_str(PyObject *o, char *buf, size_t size) {
    buf[0] = 0;
    if (!o)
        return;
    PyObject *s = py.Object_Str(o);
    if (!s) {
        py.Err_Clear();
        return;
    }
    const char *u = py.Unicode_AsUTF8AndSize(s, NULL);
    if (u)
        snprintf(buf, size, "%s", u);
    else
        py.Err_Clear();
    py_decref(s);
}

/* The pending Python exception as "TypeName: message" (and clears it). Needs the GIL. */
static void py_take_error(char *buf, size_t size) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    py.Err_Fetch(&type, &value, &tb);
    py.Err_NormalizeException(&type, &value, &tb);
    char name[128] = "", text[1536] = "";
    if (type) {
        PyObject *n = py.Object_GetAttrString(type, "__name__");
        if (n) {
            py_str(n, name, sizeof name);
            py_decref(n);
        } else {
            py.Err_Clear();
        }
    }
    py_str(value, text, sizeof text);
    if (text[0])
        snprintf(buf, size, "%s: %s", name[0] ? name : "error", text);
    else
        snprintf(buf, size, "%s", name[0] ? name : "unknown Python error");
    py_decref(type);
    py_decref(value);
    py_decref(tb);
}

/* ------------------------------------------------------------------------------------------ */
/* Calls waiting for the Python side, per thread (nested calls stack up).                       */

typedef struct Pending {
    const VSMap *in;
    VSMap *out;
    VSCore *core;
    int handled;
    struct Pending *prev;
} Pending;

static PLUGIN_THREAD_LOCAL Pending *pending_top = NULL;

static void set_error(VSMap *out, const VSAPI *vsapi, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vsapi->mapSetError(out, msg);
}

static void VS_CC upscaleCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    (void)userData;
    int resolved = resolve_python();
    if (!resolved || !py.IsInitialized()) {
        char why[128];
        if (resolved)
            snprintf(why, sizeof why, "Py_IsInitialized() is false");
        else
            snprintf(why, sizeof why, "CPython's %s was not found", py.missing[0] ? py.missing : "API");
        set_error(out, vsapi,
                  "dlgsa.Upscale: no Python interpreter is running in this process (%s), and the filter is "
                  "written in Python: run the script with vspipe or from Python's vapoursynth module, with "
                  "dlgsa-vs installed in that Python (pip install dlgsa-vs)",
                  why);
        return;
    }

    PyGILState_STATE gil = py.GILState_Ensure();
    Pending p = {in, out, core, 0, pending_top};
    pending_top = &p;

    char err[2048] = "";
    PyObject *mod = py.Import_ImportModule(BRIDGE_MODULE);
    if (!mod) {
        char exc[1800];
        py_take_error(exc, sizeof exc);
        char exe[512] = "?";
        py_str(py.Sys_GetObject("executable"), exe, sizeof exe); /* borrowed reference */
        snprintf(err, sizeof err,
                 "dlgsa.Upscale: cannot import the Python side of the plugin (%s): %s. Install dlgsa-vs "
                 "with its dependencies into the Python environment that runs VapourSynth (%s), e.g. "
                 "%s -m pip install dlgsa-vs",
                 BRIDGE_MODULE, exc, exe, exe);
    } else {
        PyObject *forward = py.Object_GetAttrString(mod, "forward");
        PyObject *ret = forward ? py.Object_CallNoArgs(forward) : NULL;
        if (!ret) {
            char exc[1800];
            py_take_error(exc, sizeof exc);
            snprintf(err, sizeof err, "dlgsa.Upscale: internal error in %s: %s", BRIDGE_MODULE, exc);
        } else if (ret != py.none) {
            /* forward() returns a message when it could not reach the filter. */
            py_str(ret, err, sizeof err);
            if (!err[0])
                snprintf(err, sizeof err, "dlgsa.Upscale: the Python side failed without a message");
        } else if (!p.handled) {
            snprintf(err, sizeof err,
                     "dlgsa.Upscale: the Python side did not receive the call (was it made on a core other "
                     "than the current Python environment's?)");
        }
        py_decref(ret);
        py_decref(forward);
        py_decref(mod);
    }

    pending_top = p.prev;
    py.GILState_Release(gil);
    if (err[0])
        vsapi->mapSetError(out, err);
}

/* Internal: called by the Python side while an Upscale call is pending on this thread. */
static void VS_CC forwardCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    (void)userData;
    Pending *p = pending_top;
    if (!p || p->handled) {
        vsapi->mapSetError(out, "dlgsa.InternalBridge: internal function of dlgsa.Upscale; call dlgsa.Upscale instead");
        return;
    }
    if (p->core != core) {
        vsapi->mapSetError(out, "dlgsa.Upscale: the current Python VapourSynth environment is not the one whose "
                                "core made this call; call dlgsa.Upscale from a script running in that environment");
        return;
    }
    VSFunction *impl = vsapi->mapGetFunction(in, "impl", 0, NULL);
    if (!impl) {
        vsapi->mapSetError(out, "dlgsa.InternalBridge: impl missing");
        return;
    }
    p->handled = 1;
    vsapi->callFunction(impl, p->in, p->out);
    vsapi->freeFunction(impl);
}

static void VS_CC versionCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    (void)in;
    (void)userData;
    (void)core;
    vsapi->mapSetData(out, "version", DLGSA_VS_VERSION, -1, dtUtf8, maReplace);
    vsapi->mapSetData(out, "python_module", BRIDGE_MODULE, -1, dtUtf8, maReplace);
}

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    vspapi->configPlugin("com.github.dlgsa-vs.dlgsa", "dlgsa", "DLGSANet super-resolution (dlgsa-vs)",
                         VS_MAKE_VERSION(PLUGIN_VERSION_MAJOR, PLUGIN_VERSION_MINOR), VS_MAKE_VERSION(4, 0), 0,
                         plugin);
    vspapi->registerFunction("Upscale", UPSCALE_ARGS, "clip:vnode;", upscaleCreate, NULL, plugin);
    vspapi->registerFunction("Version", "", "version:data;python_module:data;", versionCreate, NULL, plugin);
    vspapi->registerFunction("InternalBridge", "impl:func;", "", forwardCreate, NULL, plugin);
}
