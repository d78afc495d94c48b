"""C and C++ sources for tests/backends/test_gpu_aot.py: a harness and a stand-in libcuda.

`HARNESS_CC` drives any generated library through its C++ class: it reads
`<in>/arg<i>.bin`, runs (`host`: Run(); `device`: RunWithDevicePointers on buffers it
allocates through the driver), and writes `<out>/result<i>.bin` and `<out>/arg<i>.bin`
(arguments after the run, for variables). A failed run prints error_msg() and exits 2.

`MOCK_CUDA_C` is a fake `libcuda.so.1` for machines without a GPU: device memory is host
memory, kernels do nothing, and every call is logged to $MOCK_CUDA_LOG, so a test can
compare what the generated host code does with the plan. $MOCK_CUDA_READS scripts the
values of the next small device-to-host reads (predicates and branch indices);
$MOCK_CUDA_FAIL names a call that fails; $MOCK_CUDA_CC sets the compute capability
(default 90); $MOCK_CUDA_NO_DEVICE makes cuInit fail.
"""

from __future__ import annotations

HARNESS_CC = r"""
#include <dlfcn.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

bool ReadFile(const std::string& path, void* data, std::size_t size) {
  std::ifstream in(path, std::ios::binary);
  in.read(static_cast<char*>(data), static_cast<std::streamsize>(size));
  return size == 0 || static_cast<std::size_t>(in.gcount()) == size;
}

bool WriteFile(const std::string& path, const void* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return static_cast<bool>(out);
}

typedef int (*InitFn)(unsigned);
typedef int (*DeviceGetFn)(int*, int);
typedef int (*RetainFn)(void**, int);
typedef int (*SetCurrentFn)(void*);
typedef int (*AllocFn)(std::uint64_t*, std::size_t);
typedef int (*HtoDFn)(std::uint64_t, const void*, std::size_t);
typedef int (*DtoHFn)(void*, std::uint64_t, std::size_t);

// Runs on device buffers that this harness allocates and fills through the driver.
int RunOnDevice(TFC_CLASS& c) {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW);
  if (lib == nullptr) {
    std::fprintf(stderr, "harness: no libcuda.so.1\n");
    return 3;
  }
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "cuInit"));
  auto device_get = reinterpret_cast<DeviceGetFn>(dlsym(lib, "cuDeviceGet"));
  auto retain = reinterpret_cast<RetainFn>(dlsym(lib, "cuDevicePrimaryCtxRetain"));
  auto set_current = reinterpret_cast<SetCurrentFn>(dlsym(lib, "cuCtxSetCurrent"));
  auto alloc = reinterpret_cast<AllocFn>(dlsym(lib, "cuMemAlloc_v2"));
  auto htod = reinterpret_cast<HtoDFn>(dlsym(lib, "cuMemcpyHtoD_v2"));
  auto dtoh = reinterpret_cast<DtoHFn>(dlsym(lib, "cuMemcpyDtoH_v2"));
  int device = 0;
  void* context = nullptr;
  if (init(0) != 0 || device_get(&device, 0) != 0 || retain(&context, device) != 0 ||
      set_current(context) != 0) {
    std::fprintf(stderr, "harness: no CUDA context\n");
    return 3;
  }
  std::vector<std::uint64_t> args(TFC_CLASS::kNumArgs + 1), results(TFC_CLASS::kNumResults + 1);
  for (int i = 0; i < TFC_CLASS::kNumArgs; ++i) {
    const std::size_t size = TFC_CLASS::ArgSize(i);
    if (alloc(&args[i], size > 0 ? size : 1) != 0 ||
        (size > 0 && htod(args[i], c.arg_data(i), size) != 0)) {
      return 3;
    }
  }
  for (int i = 0; i < TFC_CLASS::kNumResults; ++i) {
    const std::size_t size = TFC_CLASS::ResultSize(i);
    if (alloc(&results[i], size > 0 ? size : 1) != 0) return 3;
  }
  if (!c.RunWithDevicePointers(args.data(), results.data())) return 2;
  for (int i = 0; i < TFC_CLASS::kNumResults; ++i) {
    const std::size_t size = TFC_CLASS::ResultSize(i);
    if (size > 0 && dtoh(c.result_data(i), results[i], size) != 0) return 3;
  }
  for (int i = 0; i < TFC_CLASS::kNumArgs; ++i) {
    const std::size_t size = TFC_CLASS::ArgSize(i);
    if (size > 0 && dtoh(c.arg_data(i), args[i], size) != 0) return 3;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: harness IN_DIR OUT_DIR host|device\n");
    return 64;
  }
  const std::string in = argv[1], out = argv[2], mode = argv[3];
  TFC_CLASS c;
  for (int i = 0; i < TFC_CLASS::kNumArgs; ++i) {
    if (!ReadFile(in + "/arg" + std::to_string(i) + ".bin", c.arg_data(i),
                  TFC_CLASS::ArgSize(i))) {
      std::fprintf(stderr, "harness: cannot read argument %d\n", i);
      return 64;
    }
  }
  int status = 0;
  if (mode == "host") {
    status = c.Run() ? 0 : 2;
  } else {
    status = RunOnDevice(c);
  }
  if (status != 0) {
    std::fprintf(stderr, "%s\n", c.error_msg().c_str());
    return status;
  }
  for (int i = 0; i < TFC_CLASS::kNumResults; ++i) {
    WriteFile(out + "/result" + std::to_string(i) + ".bin", c.result_data(i),
              TFC_CLASS::ResultSize(i));
  }
  for (int i = 0; i < TFC_CLASS::kNumArgs; ++i) {
    WriteFile(out + "/arg" + std::to_string(i) + ".bin", c.arg_data(i), TFC_CLASS::ArgSize(i));
  }
  return 0;
}
"""

MOCK_CUDA_C = r"""
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long CUdeviceptr;

typedef struct {
  char name[256];
  int num_params;
} Function;

static int g_primary;
static void* g_current;
static int g_depth;
static const char* g_reads;

static void note(const char* format, ...) {
  static FILE* file;
  va_list ap;
  if (file == NULL) {
    const char* path = getenv("MOCK_CUDA_LOG");
    if (path == NULL) return;
    file = fopen(path, "a");
    if (file == NULL) return;
  }
  va_start(ap, format);
  vfprintf(file, format, ap);
  va_end(ap);
  fputc('\n', file);
  fflush(file);
}

static int fails(const char* call) {
  const char* name = getenv("MOCK_CUDA_FAIL");
  return name != NULL && strcmp(name, call) == 0;
}

int cuInit(unsigned flags) {
  (void)flags;
  note("init");
  return getenv("MOCK_CUDA_NO_DEVICE") != NULL ? 100 : 0;
}

int cuDeviceGet(int* device, int ordinal) {
  *device = ordinal;
  return 0;
}

int cuDeviceGetAttribute(int* value, int attribute, int device) {
  const char* cc = getenv("MOCK_CUDA_CC");
  int capability = cc != NULL ? atoi(cc) : 90;
  (void)device;
  *value = attribute == 75 ? capability / 10 : capability % 10;
  return 0;
}

int cuDevicePrimaryCtxRetain(void** context, int device) {
  (void)device;
  *context = &g_primary;
  return 0;
}

int cuCtxSetCurrent(void* context) {
  g_current = context;
  return 0;
}

int cuCtxPushCurrent_v2(void* context) {
  note("push");
  g_depth++;
  g_current = context;
  return 0;
}

int cuCtxPopCurrent_v2(void** context) {
  note("pop");
  g_depth--;
  if (context != NULL) *context = g_current;
  g_current = NULL;
  return 0;
}

int cuCtxSynchronize(void) {
  note("sync");
  return 0;
}

int cuModuleLoadDataEx(void** module, const void* image, unsigned count, int* options,
                       void** values) {
  unsigned i;
  if (fails("cuModuleLoadDataEx")) {
    for (i = 0; i < count; ++i) {
      if (options[i] == 5) strcpy((char*)values[i], "mock ptxas: bad PTX");
    }
    return 218;
  }
  note("load %zu", strlen((const char*)image));
  *module = strdup((const char*)image);
  return 0;
}

/* Counts the .param entries of the kernel's PTX signature. */
int cuModuleGetFunction(void** function, void* module, const char* name) {
  char pattern[300];
  const char* start;
  const char* end;
  const char* p;
  Function* f;
  snprintf(pattern, sizeof pattern, ".entry %s(", name);
  start = strstr((const char*)module, pattern);
  if (start == NULL) return 500;
  end = strchr(start, ')');
  f = (Function*)calloc(1, sizeof *f);
  snprintf(f->name, sizeof f->name, "%s", name);
  for (p = strstr(start, ".param"); p != NULL && p < end; p = strstr(p + 1, ".param")) {
    f->num_params++;
  }
  *function = f;
  return 0;
}

int cuFuncSetAttribute(void* function, int attribute, int value) {
  (void)function;
  (void)attribute;
  (void)value;
  return 0;
}

int cuMemAlloc_v2(CUdeviceptr* address, size_t bytes) {
  void* memory = calloc(1, bytes);
  *address = (CUdeviceptr)(uintptr_t)memory;
  note("alloc %llu %zu", *address, bytes);
  return 0;
}

int cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
  note("htod %llu %zu", dst, bytes);
  memcpy((void*)(uintptr_t)dst, src, bytes);
  return 0;
}

/* Small reads take the next scripted value while $MOCK_CUDA_READS lasts. */
int cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
  char* next;
  long long value;
  note("dtoh %llu %zu", src, bytes);
  if (g_reads == NULL) g_reads = getenv("MOCK_CUDA_READS");
  if (g_reads != NULL && *g_reads != '\0' && bytes <= 8) {
    value = strtoll(g_reads, &next, 10);
    g_reads = *next == ',' ? next + 1 : next;
    memcpy(dst, &value, bytes); /* little-endian: the low bytes */
    return 0;
  }
  memcpy(dst, (const void*)(uintptr_t)src, bytes);
  return 0;
}

int cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  note("dtod %llu %llu %zu", dst, src, bytes);
  memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, bytes);
  return 0;
}

int cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                   unsigned by, unsigned bz, unsigned shared, void* stream, void** params,
                   void** extra) {
  const Function* f = (const Function*)function;
  char line[4096];
  int used;
  int i;
  (void)stream;
  (void)extra;
  if (fails("cuLaunchKernel")) return 719;
  if (g_depth != 1 || g_current != &g_primary) return 201;
  used = snprintf(line, sizeof line, "launch %s %u %u %u %u %u %u %u", f->name, gx, gy, gz,
                  bx, by, bz, shared);
  for (i = 0; i < f->num_params; ++i) {
    used += snprintf(line + used, sizeof line - (size_t)used, " %llu",
                     *(const CUdeviceptr*)params[i]);
  }
  note("%s", line);
  return 0;
}

int cuGetErrorString(int status, const char** text) {
  static char buffer[64];
  snprintf(buffer, sizeof buffer, "mock error %d", status);
  *text = buffer;
  return 0;
}

int cuMemFree_v2(CUdeviceptr address) {
  free((void*)(uintptr_t)address);
  return 0;
}
"""
