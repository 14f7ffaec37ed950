// librdmacm.cc - librdmacm opened at run time (dlopen), like libibverbs (libibverbs.cc): the addon
// loads on a host without rdma-core's librdmacm1, and only a connection manager (new CmChannel)
// needs it; without it that constructor throws ERR_LIBRDMACM_MISSING. Each librdmacm function the
// addon calls is defined here as a forwarder to the symbol dlsym found (hidden: -fvisibility=hidden).
// RDMA_SESSION_LIBRDMACM names another library file to open (tests; rdma-core in another prefix).
#include "cm.h"
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <mutex>
#include <string>

// X(return type, name, parameters, arguments): every librdmacm symbol the addon references.
#define RV_CM_FUNCTIONS(X)                                                                                    \
  X(struct rdma_event_channel*, rdma_create_event_channel, (void), ())                                        \
  X(void, rdma_destroy_event_channel, (struct rdma_event_channel* ch), (ch))                                  \
  X(int, rdma_create_id,                                                                                      \
    (struct rdma_event_channel* ch, struct rdma_cm_id** id, void* ctx, enum rdma_port_space ps),              \
    (ch, id, ctx, ps))                                                                                        \
  X(int, rdma_destroy_id, (struct rdma_cm_id* id), (id))                                                      \
  X(int, rdma_bind_addr, (struct rdma_cm_id* id, struct sockaddr* a), (id, a))                                \
  X(int, rdma_listen, (struct rdma_cm_id* id, int backlog), (id, backlog))                                    \
  X(int, rdma_resolve_addr, (struct rdma_cm_id* id, struct sockaddr* s, struct sockaddr* d, int ms),          \
    (id, s, d, ms))                                                                                           \
  X(int, rdma_resolve_route, (struct rdma_cm_id* id, int ms), (id, ms))                                       \
  X(int, rdma_get_cm_event, (struct rdma_event_channel* ch, struct rdma_cm_event** e), (ch, e))               \
  X(int, rdma_ack_cm_event, (struct rdma_cm_event* e), (e))                                                   \
  X(int, rdma_init_qp_attr, (struct rdma_cm_id* id, struct ibv_qp_attr* a, int* mask), (id, a, mask))         \
  X(int, rdma_connect, (struct rdma_cm_id* id, struct rdma_conn_param* p), (id, p))                           \
  X(int, rdma_accept, (struct rdma_cm_id* id, struct rdma_conn_param* p), (id, p))                            \
  X(int, rdma_reject, (struct rdma_cm_id* id, const void* pd, uint8_t len), (id, pd, len))                    \
  X(int, rdma_establish, (struct rdma_cm_id* id), (id))                                                       \
  X(int, rdma_disconnect, (struct rdma_cm_id* id), (id))                                                      \
  X(const char*, rdma_event_str, (enum rdma_cm_event_type e), (e))

namespace {

struct Functions {
#define RV_POINTER(ret, name, params, args) ret(*name) params = nullptr;
  RV_CM_FUNCTIONS(RV_POINTER)
#undef RV_POINTER
};

struct Library {
  bool loaded = false;
  std::string file;
  std::string error;
  Functions fns;
};

const char* LibraryFile() {
  const char* env = std::getenv("RDMA_SESSION_LIBRDMACM");
  return env != nullptr && env[0] != '\0' ? env : "librdmacm.so.1";
}

// Opens the library and resolves every symbol, once per process; the handle is never closed.
const Library& Open() {
  static Library lib;
  static std::once_flag once;
  std::call_once(once, [] {
    lib.file = LibraryFile();
    void* handle = dlopen(lib.file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      lib.error = why != nullptr ? why : lib.file + ": dlopen failed";
      return;
    }
#define RV_RESOLVE(ret, name, params, args)                                                   \
    lib.fns.name = reinterpret_cast<decltype(lib.fns.name)>(dlsym(handle, #name));            \
    if (lib.fns.name == nullptr && lib.error.empty()) {                                       \
      lib.error = lib.file + " has no " #name " (rdma-core older than v28?)";                 \
    }
    RV_CM_FUNCTIONS(RV_RESOLVE)
#undef RV_RESOLVE
    lib.loaded = lib.error.empty();
  });
  return lib;
}

// Reached only after RequireLibrdmacm succeeded (every path starts at new CmChannel).
const Functions& Fns() {
  const Library& lib = Open();
  if (!lib.loaded) {
    std::fprintf(stderr, "rdma_verbs: a librdmacm function was called but %s\n", lib.error.c_str());
    std::abort();
  }
  return lib.fns;
}

}  // namespace

#define RV_FORWARD(ret, name, params, args) \
  extern "C" ret(name) params { return (Fns().name) args; }
RV_CM_FUNCTIONS(RV_FORWARD)
#undef RV_FORWARD

namespace rv {

void RequireLibrdmacm(Napi::Env env) {
  const Library& lib = Open();
  if (!lib.loaded) {
    Napi::Error err = Napi::Error::New(env, "librdmacm could not be loaded: " + lib.error +
                                                " (the connection manager needs rdma-core's librdmacm: apt-get install librdmacm1)");
    err.Set("code", "ERR_LIBRDMACM_MISSING");
    throw err;
  }
}

// librdmacm() -> { loaded: true, file } | { loaded: false, file, error }: opens it on first call.
Napi::Value LibrdmacmStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Library& lib = Open();
  Napi::Object out = Napi::Object::New(env);
  out.Set("loaded", lib.loaded);
  out.Set("file", lib.file);
  if (!lib.loaded) out.Set("error", lib.error);
  return out;
}

}  // namespace rv
