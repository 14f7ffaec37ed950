// librdmacm.cc - librdmacm opened at run time (dlopen), like libibverbs (libibverbs.cc): the addon
// loads on a host without rdma-core's librdmacm1, and only a connection manager (new CmChannel)
// needs it; without it that constructor throws ERR_LIBRDMACM_MISSING. Each librdmacm function the
// addon calls is defined here as a forwarder to the symbol dlsym found (the loader:
// dynamic-library.h; hidden: -fvisibility=hidden).
// RDMA_SESSION_LIBRDMACM names another library file to open (tests; rdma-core in another prefix).
#include "cm.h"
#include "dynamic-library.h"

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
constexpr rv::LibrarySpec kLibrary{"librdmacm", "RDMA_SESSION_LIBRDMACM", "librdmacm.so.1", "v28"};
}  // namespace

RV_DYNAMIC_LIBRARY(RV_CM_FUNCTIONS)

namespace rv {

void RequireLibrdmacm(Napi::Env env) {
  RequireLoaded(env, kLibrary, LoadedLibrary(), "ERR_LIBRDMACM_MISSING",
                " (the connection manager needs rdma-core's librdmacm: apt-get install librdmacm1)");
}

// librdmacm() -> { loaded: true, file } | { loaded: false, file, error }: opens it on first call.
Napi::Value LibrdmacmStatus(const Napi::CallbackInfo& info) { return LibraryStatus(info.Env(), LoadedLibrary()); }

}  // namespace rv
