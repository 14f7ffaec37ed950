// dynamic-library.cc - opening a library with dlopen and resolving its symbols, for
// RV_DYNAMIC_LIBRARY (dynamic-library.h): one loader for libibverbs and librdmacm.
#include "dynamic-library.h"
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>

namespace rv {

LibraryLoad OpenLibrary(const LibrarySpec& spec) {
  LibraryLoad load;
  const char* env = std::getenv(spec.env_var);
  load.file = env != nullptr && env[0] != '\0' ? env : spec.default_file;
  load.handle = dlopen(load.file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (load.handle == nullptr) {
    const char* why = dlerror();
    load.error = why != nullptr ? why : load.file + ": dlopen failed";
  }
  return load;
}

void* ResolveSymbol(LibraryLoad& load, const LibrarySpec& spec, const char* name) {
  void* symbol = dlsym(load.handle, name);
  if (symbol == nullptr && load.error.empty()) {
    load.error = load.file + " has no " + name + " (rdma-core older than " + spec.min_release + "?)";
  }
  return symbol;
}

void FinishLoad(LibraryLoad& load) { load.loaded = load.error.empty(); }

void AbortUnloaded(const LibrarySpec& spec, const LibraryLoad& load) {
  std::fprintf(stderr, "rdma_verbs: a %s function was called but %s\n", spec.label, load.error.c_str());
  std::abort();
}

void RequireLoaded(Napi::Env env, const LibrarySpec& spec, const LibraryLoad& load, const char* code,
                   const char* hint) {
  if (load.loaded) return;
  Napi::Error err = Napi::Error::New(env, std::string(spec.label) + " could not be loaded: " + load.error + hint);
  err.Set("code", code);
  throw err;
}

Napi::Value LibraryStatus(Napi::Env env, const LibraryLoad& load) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loaded", load.loaded);
  out.Set("file", load.file);
  if (!load.loaded) out.Set("error", load.error);
  return out;
}

}  // namespace rv
