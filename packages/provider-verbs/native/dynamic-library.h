// dynamic-library.h - a shared library opened at run time (dlopen) instead of linked, so that the
// addon has no DT_NEEDED on it and loads on a host without it. libibverbs.cc and librdmacm.cc each
// list the functions they use as an X-macro and expand RV_DYNAMIC_LIBRARY with it: that defines a
// forwarder (extern "C", hidden by -fvisibility=hidden) for every function, resolved with dlsym the
// first time the library is needed, and LoadedLibrary() for the Require/Status entry points.
#pragma once
#include <napi.h>
#include <mutex>
#include <string>

namespace rv {

// What names a library: its label in messages, the environment variable that overrides its file
// (tests; rdma-core in another prefix), its default file and the first rdma-core release with
// every symbol listed (named when one is missing).
struct LibrarySpec {
  const char* label;
  const char* env_var;
  const char* default_file;
  const char* min_release;
};

// The outcome of opening a library: loaded, or not with error saying why.
struct LibraryLoad {
  bool loaded = false;
  std::string file;
  std::string error;
  void* handle = nullptr;
};

// dlopen of the spec's file (RTLD_NOW | RTLD_LOCAL); the handle is never closed.
LibraryLoad OpenLibrary(const LibrarySpec& spec);
// dlsym of name (nullptr when missing); the first missing symbol becomes load's error.
void* ResolveSymbol(LibraryLoad& load, const LibrarySpec& spec, const char* name);
// Finishes an open: loaded when nothing failed.
void FinishLoad(LibraryLoad& load);
// A forwarder ran although the library did not load: a bug in the addon (every path starts at a
// Require call), so it aborts with a message on stderr.
[[noreturn]] void AbortUnloaded(const LibrarySpec& spec, const LibraryLoad& load);
// Throws a JS Error "<label> could not be loaded: <error><hint>" with the given code unless loaded.
void RequireLoaded(Napi::Env env, const LibrarySpec& spec, const LibraryLoad& load, const char* code,
                   const char* hint);
// { loaded: true, file } | { loaded: false, file, error }.
Napi::Value LibraryStatus(Napi::Env env, const LibraryLoad& load);

}  // namespace rv

#define RV_DL_POINTER(ret, name, params, args) ret(*name) params = nullptr;
#define RV_DL_RESOLVE(ret, name, params, args) \
  lib.fns.name = reinterpret_cast<decltype(lib.fns.name)>(::rv::ResolveSymbol(lib.load, kLibrary, #name));
// Parenthesized names: some (ibv_query_port) are also function-like macros in <infiniband/verbs.h>.
#define RV_DL_FORWARD(ret, name, params, args) \
  extern "C" ret(name) params { return (DynamicFunctions().name) args; }

// RV_DYNAMIC_LIBRARY(FUNCTIONS): FUNCTIONS(X) lists X(return type, name, parameters, arguments)
// per symbol; the including file defines kLibrary, a constexpr rv::LibrarySpec, in its anonymous
// namespace first. Defines there LoadedLibrary() (opens and resolves once per process), and the
// forwarders.
#define RV_DYNAMIC_LIBRARY(FUNCTIONS)                                                             \
  namespace {                                                                                     \
  struct DynamicTable {                                                                           \
    FUNCTIONS(RV_DL_POINTER)                                                                      \
  };                                                                                              \
  struct DynamicState {                                                                           \
    ::rv::LibraryLoad load;                                                                       \
    DynamicTable fns;                                                                             \
  };                                                                                              \
  const DynamicState& OpenDynamic() {                                                             \
    static DynamicState lib;                                                                      \
    static std::once_flag once;                                                                   \
    std::call_once(once, [] {                                                                     \
      lib.load = ::rv::OpenLibrary(kLibrary);                                                     \
      if (lib.load.handle == nullptr) return;                                                     \
      FUNCTIONS(RV_DL_RESOLVE)                                                                    \
      ::rv::FinishLoad(lib.load);                                                                 \
    });                                                                                           \
    return lib;                                                                                   \
  }                                                                                               \
  [[maybe_unused]] const ::rv::LibraryLoad& LoadedLibrary() { return OpenDynamic().load; }        \
  const DynamicTable& DynamicFunctions() {                                                        \
    const DynamicState& lib = OpenDynamic();                                                      \
    if (!lib.load.loaded) ::rv::AbortUnloaded(kLibrary, lib.load);                                \
    return lib.fns;                                                                               \
  }                                                                                               \
  }                                                                                               \
  FUNCTIONS(RV_DL_FORWARD)
