"""The fixed C text of a standalone GPU library: the CUDA driver API, loaded at run time.

The generated library must link and load on machines without a GPU, so it never links
libcuda: `DRIVER_C` declares the few driver types and entry points it uses itself (no
cuda.h), opens `libcuda.so.1` with dlopen on first use and looks each function up with
dlsym. Initialisation runs once per process (pthread_once): driver, device 0's primary
context, the module image (PTX or cubin, with the JIT's error log on failure), the kernels,
the constant pool and the device arena. A failed initialisation is remembered, so every
later run reports the same reason. Runs share the arena and are serialised by one mutex;
each pushes the primary context and pops it again, leaving the caller's context alone.

The text expects these macros and tables from `backends.gpu_aot.plan_c` (which also writes
the plan and the entry functions): TFC_CLASS_NAME, TFC_ARCH (e.g. 90), TFC_NUM_KERNELS,
TFC_MAX_LAUNCH_ARGS, TFC_ARENA_BYTES, TFC_CONSTANT_BYTES, TFC_NUM_ARGS, TFC_NUM_RESULTS,
TFC_NUM_VARIABLES, kImage, kConstants, kKernels, kLaunches, kLaunchArgs, kArgs, kResults,
kVariables. This file only holds text.
"""

from __future__ import annotations

# The standard headers, the driver API subset, and the tables' types. Comes first, before
# the generated tables.
PRELUDE_C = r"""
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* --- the subset of the CUDA driver API used here (cuda.h is not needed to build) ---- */
typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st* CUcontext;
typedef struct CUmod_st* CUmodule;
typedef struct CUfunc_st* CUfunction;
typedef struct CUstream_st* CUstream;

enum {
  kCuDeviceAttributeComputeCapabilityMajor = 75,
  kCuDeviceAttributeComputeCapabilityMinor = 76,
  kCuJitErrorLogBuffer = 5,
  kCuJitErrorLogBufferSizeBytes = 6,
  kCuFuncAttributeMaxDynamicSharedSizeBytes = 8,
  /* Dynamic shared memory a kernel gets without opting in to more. */
  kDefaultSharedBytes = 48 * 1024,
};

typedef struct {
  CUresult (*Init)(unsigned flags);
  CUresult (*DeviceGet)(CUdevice* device, int ordinal);
  CUresult (*DeviceGetAttribute)(int* value, int attribute, CUdevice device);
  CUresult (*DevicePrimaryCtxRetain)(CUcontext* context, CUdevice device);
  CUresult (*CtxPushCurrent)(CUcontext context);
  CUresult (*CtxPopCurrent)(CUcontext* context);
  CUresult (*CtxSynchronize)(void);
  CUresult (*ModuleLoadDataEx)(CUmodule* module, const void* image, unsigned num_options,
                               int* options, void** values);
  CUresult (*ModuleGetFunction)(CUfunction* function, CUmodule module, const char* name);
  CUresult (*FuncSetAttribute)(CUfunction function, int attribute, int value);
  CUresult (*MemAlloc)(CUdeviceptr* address, size_t bytes);
  CUresult (*MemcpyHtoD)(CUdeviceptr dst, const void* src, size_t bytes);
  CUresult (*MemcpyDtoH)(void* dst, CUdeviceptr src, size_t bytes);
  CUresult (*MemcpyDtoD)(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
  CUresult (*LaunchKernel)(CUfunction function, unsigned grid_x, unsigned grid_y,
                           unsigned grid_z, unsigned block_x, unsigned block_y,
                           unsigned block_z, unsigned shared_bytes, CUstream stream,
                           void** params, void** extra);
  CUresult (*GetErrorString)(CUresult status, const char** text);
} Driver;

/* The versioned names are the ones cuda.h maps the plain names to since CUDA 4. */
static const struct {
  const char* name;
  size_t offset;
} kDriverSymbols[] = {
    {"cuInit", offsetof(Driver, Init)},
    {"cuDeviceGet", offsetof(Driver, DeviceGet)},
    {"cuDeviceGetAttribute", offsetof(Driver, DeviceGetAttribute)},
    {"cuDevicePrimaryCtxRetain", offsetof(Driver, DevicePrimaryCtxRetain)},
    {"cuCtxPushCurrent_v2", offsetof(Driver, CtxPushCurrent)},
    {"cuCtxPopCurrent_v2", offsetof(Driver, CtxPopCurrent)},
    {"cuCtxSynchronize", offsetof(Driver, CtxSynchronize)},
    {"cuModuleLoadDataEx", offsetof(Driver, ModuleLoadDataEx)},
    {"cuModuleGetFunction", offsetof(Driver, ModuleGetFunction)},
    {"cuFuncSetAttribute", offsetof(Driver, FuncSetAttribute)},
    {"cuMemAlloc_v2", offsetof(Driver, MemAlloc)},
    {"cuMemcpyHtoD_v2", offsetof(Driver, MemcpyHtoD)},
    {"cuMemcpyDtoH_v2", offsetof(Driver, MemcpyDtoH)},
    {"cuMemcpyDtoD_v2", offsetof(Driver, MemcpyDtoD)},
    {"cuLaunchKernel", offsetof(Driver, LaunchKernel)},
    {"cuGetErrorString", offsetof(Driver, GetErrorString)},
};

/* --- the tables' types ---------------------------------------------------------------- */
enum { kArena = 0, kConstantPool = 1 };

typedef struct {
  const char* name;
  unsigned max_shared_bytes; /* the most dynamic shared memory any launch asks for */
} Kernel;

typedef struct {
  int pool;
  uint64_t offset;
} SlotRef;

typedef struct {
  int kernel;
  unsigned grid[3];
  unsigned block[3];
  unsigned shared_bytes;
  int first_arg; /* into kLaunchArgs */
  int num_args;
  const char* instr;
} Launch;

typedef struct {
  int pool;
  uint64_t offset;
  size_t size;
  const char* label; /* "argument 0 (x)", for messages */
} Buffer;

typedef struct {
  int arg;
  int result;
  size_t size;
} Variable;
"""

# The runtime proper: state, initialisation and the step helpers. Comes after the tables.
RUNTIME_C = r"""
/* Where a run reports its failure: the caller's buffer (may be NULL). */
typedef struct {
  char* error;
  size_t error_size;
} Status;

static struct {
  int ready;       /* initialisation succeeded */
  char error[1024]; /* why it failed */
  void* library;
  Driver cu;
  CUcontext context;
  CUmodule module;
  CUfunction functions[TFC_NUM_KERNELS > 0 ? TFC_NUM_KERNELS : 1];
  CUdeviceptr arena;
  CUdeviceptr constants;
} g;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* Writes "<class>: <message>" into buffer (when there is room). */
static void format_message(char* buffer, size_t size, const char* format, va_list ap) {
  int used;
  if (buffer == NULL || size == 0) return;
  used = snprintf(buffer, size, "%s: ", TFC_CLASS_NAME);
  if (used < 0 || (size_t)used >= size) return;
  vsnprintf(buffer + used, size - (size_t)used, format, ap);
}

static int fail(Status* st, const char* format, ...) __attribute__((format(printf, 2, 3)));
static int init_fail(const char* format, ...) __attribute__((format(printf, 1, 2)));

static int fail(Status* st, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  format_message(st->error, st->error_size, format, ap);
  va_end(ap);
  return -1;
}

static int init_fail(const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  format_message(g.error, sizeof g.error, format, ap);
  va_end(ap);
  return -1;
}

static const char* cu_error(CUresult status) {
  const char* text = NULL;
  if (g.cu.GetErrorString == NULL || g.cu.GetErrorString(status, &text) != 0 || text == NULL) {
    return "unknown error";
  }
  return text;
}

static int check(Status* st, CUresult status, const char* call, const char* what) {
  if (status == 0) return 0;
  return fail(st, "CUDA call %s failed (%s): %s (error %d)", call, what, cu_error(status),
              (int)status);
}

static int init_check(CUresult status, const char* call) {
  if (status == 0) return 0;
  return init_fail("CUDA call %s failed: %s (error %d)", call, cu_error(status), (int)status);
}

/* --- initialisation, once per process --------------------------------------------------- */
static int load_driver(void) {
  size_t i;
  const char* reason;
  g.library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (g.library == NULL) {
    reason = dlerror();
    return init_fail("no CUDA driver: cannot load libcuda.so.1 (%s); an NVIDIA driver is "
                     "needed to run this library",
                     reason != NULL ? reason : "not found");
  }
  for (i = 0; i < sizeof kDriverSymbols / sizeof kDriverSymbols[0]; ++i) {
    void* symbol = dlsym(g.library, kDriverSymbols[i].name);
    if (symbol == NULL) {
      return init_fail("the CUDA driver (libcuda.so.1) has no %s; it is too old",
                       kDriverSymbols[i].name);
    }
    /* memcpy: ISO C has no conversion from void* to a function pointer. */
    memcpy((char*)&g.cu + kDriverSymbols[i].offset, &symbol, sizeof symbol);
  }
  return 0;
}

static int open_device(void) {
  CUdevice device;
  int major = 0;
  int minor = 0;
  CUresult status = g.cu.Init(0);
  if (status != 0) {
    return init_fail("no usable CUDA device: cuInit failed: %s (error %d)", cu_error(status),
                     (int)status);
  }
  status = g.cu.DeviceGet(&device, 0);
  if (status != 0) {
    return init_fail("no CUDA device 0: %s (error %d)", cu_error(status), (int)status);
  }
  if (init_check(g.cu.DeviceGetAttribute(&major, kCuDeviceAttributeComputeCapabilityMajor,
                                         device), "cuDeviceGetAttribute") != 0 ||
      init_check(g.cu.DeviceGetAttribute(&minor, kCuDeviceAttributeComputeCapabilityMinor,
                                         device), "cuDeviceGetAttribute") != 0) {
    return -1;
  }
  if (major * 10 + minor < TFC_ARCH) {
    return init_fail("the kernels were compiled for sm_%d, but device 0 is sm_%d%d; "
                     "regenerate the library with --gpu_arch sm_%d%d",
                     TFC_ARCH, major, minor, major, minor);
  }
  return init_check(g.cu.DevicePrimaryCtxRetain(&g.context, device),
                    "cuDevicePrimaryCtxRetain");
}

static int load_module(void) {
  char log[8192] = "";
  int options[2] = {kCuJitErrorLogBuffer, kCuJitErrorLogBufferSizeBytes};
  void* values[2] = {log, (void*)(uintptr_t)sizeof log};
  int i;
  CUresult status = g.cu.ModuleLoadDataEx(&g.module, kImage, 2, options, values);
  if (status != 0) {
    return init_fail("the CUDA driver rejected the kernels (sm_%d): %s (error %d)%s%s",
                     TFC_ARCH, cu_error(status), (int)status, log[0] ? ": " : "", log);
  }
  for (i = 0; i < TFC_NUM_KERNELS; ++i) {
    status = g.cu.ModuleGetFunction(&g.functions[i], g.module, kKernels[i].name);
    if (status != 0) {
      return init_fail("kernel %s is missing from the module: %s (error %d)",
                       kKernels[i].name, cu_error(status), (int)status);
    }
    if (kKernels[i].max_shared_bytes > kDefaultSharedBytes &&
        init_check(g.cu.FuncSetAttribute(g.functions[i],
                                         kCuFuncAttributeMaxDynamicSharedSizeBytes,
                                         (int)kKernels[i].max_shared_bytes),
                   "cuFuncSetAttribute") != 0) {
      return -1;
    }
  }
  return 0;
}

static int allocate_buffers(void) {
  const size_t arena = TFC_ARENA_BYTES > 0 ? TFC_ARENA_BYTES : 1;
  CUresult status = g.cu.MemAlloc(&g.arena, arena);
  if (status != 0) {
    return init_fail("cannot allocate the %llu-byte device arena: %s (error %d)",
                     (unsigned long long)arena, cu_error(status), (int)status);
  }
  if (TFC_CONSTANT_BYTES == 0) return 0;
  status = g.cu.MemAlloc(&g.constants, TFC_CONSTANT_BYTES);
  if (status != 0) {
    return init_fail("cannot allocate the %llu-byte constant pool: %s (error %d)",
                     (unsigned long long)TFC_CONSTANT_BYTES, cu_error(status), (int)status);
  }
  return init_check(g.cu.MemcpyHtoD(g.constants, kConstants, TFC_CONSTANT_BYTES),
                    "cuMemcpyHtoD (constants)");
}

static void initialize(void) {
  CUcontext popped;
  int status;
  if (load_driver() != 0 || open_device() != 0) return;
  if (init_check(g.cu.CtxPushCurrent(g.context), "cuCtxPushCurrent") != 0) return;
  status = load_module();
  if (status == 0) status = allocate_buffers();
  g.cu.CtxPopCurrent(&popped);
  g.ready = status == 0;
}

/* --- the steps of a run -------------------------------------------------------------------- */
/* A plan need not use every kind of step. */
#define TFC_STEP __attribute__((unused)) static

static CUdeviceptr address(int pool, uint64_t offset) {
  return (pool == kArena ? g.arena : g.constants) + offset;
}

TFC_STEP int launch(Status* st, int index) {
  const Launch* l = &kLaunches[index];
  CUdeviceptr values[TFC_MAX_LAUNCH_ARGS > 0 ? TFC_MAX_LAUNCH_ARGS : 1];
  void* params[TFC_MAX_LAUNCH_ARGS > 0 ? TFC_MAX_LAUNCH_ARGS : 1];
  int i;
  for (i = 0; i < l->num_args; ++i) {
    const SlotRef* arg = &kLaunchArgs[l->first_arg + i];
    values[i] = address(arg->pool, arg->offset);
    params[i] = &values[i];
  }
  return check(st,
               g.cu.LaunchKernel(g.functions[l->kernel], l->grid[0], l->grid[1], l->grid[2],
                                 l->block[0], l->block[1], l->block[2], l->shared_bytes, NULL,
                                 params, NULL),
               "cuLaunchKernel", l->instr);
}

TFC_STEP int copy(Status* st, int dst_pool, uint64_t dst, int src_pool, uint64_t src,
                size_t bytes, const char* instr) {
  return check(st, g.cu.MemcpyDtoD(address(dst_pool, dst), address(src_pool, src), bytes),
               "cuMemcpyDtoD", instr);
}

/* Reads a predicate or branch index back to the host. */
TFC_STEP int read_back(Status* st, int pool, uint64_t offset, void* value, size_t bytes,
                     const char* instr) {
  return check(st, g.cu.MemcpyDtoH(value, address(pool, offset), bytes), "cuMemcpyDtoH",
               instr);
}

#define TRY(step)                \
  do {                           \
    if ((step) != 0) return -1;  \
  } while (0)

/* Initialises (once), then takes the lock and makes the primary context current. */
static int begin_run(Status* st) {
  if (st->error != NULL && st->error_size > 0) st->error[0] = '\0';
  pthread_once(&g_once, initialize);
  if (!g.ready) {
    if (st->error != NULL && st->error_size > 0) {
      snprintf(st->error, st->error_size, "%s", g.error);
    }
    return -1;
  }
  pthread_mutex_lock(&g_lock);
  if (check(st, g.cu.CtxPushCurrent(g.context), "cuCtxPushCurrent", "the run") != 0) {
    pthread_mutex_unlock(&g_lock);
    return -1;
  }
  return 0;
}

/* Waits for the device (so that a failing kernel is reported by this run), restores the
 * caller's context and releases the lock. */
static int end_run(Status* st, int status) {
  CUcontext popped;
  if (status == 0) status = check(st, g.cu.CtxSynchronize(), "cuCtxSynchronize", "the run");
  g.cu.CtxPopCurrent(&popped);
  pthread_mutex_unlock(&g_lock);
  return status;
}
"""

# Moving arguments in and results out, for host buffers and for device buffers. Comes after
# RUNTIME_C.
TRANSFERS_C = r"""
static int upload_host(Status* st, void* const* args) {
  int i;
  for (i = 0; i < TFC_NUM_ARGS; ++i) {
    const Buffer* b = &kArgs[i];
    if (b->size == 0) continue;
    TRY(check(st, g.cu.MemcpyHtoD(address(b->pool, b->offset), args[i], b->size),
              "cuMemcpyHtoD", b->label));
  }
  return 0;
}

static int download_host(Status* st, void* const* results) {
  int i;
  for (i = 0; i < TFC_NUM_RESULTS; ++i) {
    const Buffer* b = &kResults[i];
    if (b->size == 0) continue;
    TRY(check(st, g.cu.MemcpyDtoH(results[i], address(b->pool, b->offset), b->size),
              "cuMemcpyDtoH", b->label));
  }
  return 0;
}

/* Fails unless every non-empty buffer has a device address. */
static int check_device_pointers(Status* st, const uint64_t* args, const uint64_t* results) {
  int i;
  if (args == NULL && TFC_NUM_ARGS > 0) return fail(st, "the argument array is NULL");
  if (results == NULL && TFC_NUM_RESULTS > 0) return fail(st, "the result array is NULL");
  for (i = 0; i < TFC_NUM_ARGS; ++i) {
    if (kArgs[i].size > 0 && args[i] == 0) {
      return fail(st, "%s: the device pointer is 0", kArgs[i].label);
    }
  }
  for (i = 0; i < TFC_NUM_RESULTS; ++i) {
    if (kResults[i].size > 0 && results[i] == 0) {
      return fail(st, "%s: the device pointer is 0", kResults[i].label);
    }
  }
  return 0;
}

static int upload_device(Status* st, const uint64_t* args) {
  int i;
  for (i = 0; i < TFC_NUM_ARGS; ++i) {
    const Buffer* b = &kArgs[i];
    if (b->size == 0) continue;
    TRY(check(st, g.cu.MemcpyDtoD(address(b->pool, b->offset), args[i], b->size),
              "cuMemcpyDtoD", b->label));
  }
  return 0;
}

/* Copies the results out, then each updated variable into its argument buffer. */
static int download_device(Status* st, const uint64_t* args, const uint64_t* results) {
  int i;
  for (i = 0; i < TFC_NUM_RESULTS; ++i) {
    const Buffer* b = &kResults[i];
    if (b->size == 0) continue;
    TRY(check(st, g.cu.MemcpyDtoD(results[i], address(b->pool, b->offset), b->size),
              "cuMemcpyDtoD", b->label));
  }
  for (i = 0; i < TFC_NUM_VARIABLES; ++i) {
    const Variable* v = &kVariables[i];
    if (args[v->arg] == results[v->result]) continue;
    TRY(check(st, g.cu.MemcpyDtoD(args[v->arg], results[v->result], v->size), "cuMemcpyDtoD",
              kArgs[v->arg].label));
  }
  return 0;
}
"""
