// libibverbs.cc - libibverbs opened at run time (dlopen), not linked: the addon (and so a prebuilt
// binary) loads on a host without rdma-core, and says so when asked, instead of failing to load
// with "libibverbs.so.1: cannot open shared object file". Each libibverbs function the addon (or an
// inline function of <infiniband/verbs.h>) calls is defined here as a forwarder to the symbol
// dlsym found (the loader: dynamic-library.h); the addon is built with -fvisibility=hidden, so
// these stay internal to it.
// RDMA_SESSION_LIBIBVERBS names another library file to open (tests; rdma-core in another prefix).
#include "verbs.h"
#include "dynamic-library.h"

// X(return type, name, parameters, arguments): every libibverbs symbol the addon references.
#define RV_IBV_FUNCTIONS(X)                                                                                      \
  X(struct ibv_device**, ibv_get_device_list, (int* num), (num))                                                 \
  X(void, ibv_free_device_list, (struct ibv_device** list), (list))                                              \
  X(const char*, ibv_get_device_name, (struct ibv_device* d), (d))                                               \
  X(__be64, ibv_get_device_guid, (struct ibv_device* d), (d))                                                    \
  X(const char*, ibv_node_type_str, (enum ibv_node_type t), (t))                                                 \
  X(const char*, ibv_port_state_str, (enum ibv_port_state s), (s))                                               \
  X(const char*, ibv_event_type_str, (enum ibv_event_type e), (e))                                               \
  X(struct ibv_context*, ibv_open_device, (struct ibv_device* d), (d))                                           \
  X(int, ibv_close_device, (struct ibv_context* c), (c))                                                         \
  X(int, ibv_query_device, (struct ibv_context* c, struct ibv_device_attr* a), (c, a))                           \
  X(int, ibv_query_port, (struct ibv_context* c, uint8_t p, struct _compat_ibv_port_attr* a), (c, p, a))         \
  X(ssize_t, _ibv_query_gid_table,                                                                               \
    (struct ibv_context* c, struct ibv_gid_entry* e, size_t max, uint32_t flags, size_t size),                   \
    (c, e, max, flags, size))                                                                                    \
  X(int, ibv_get_async_event, (struct ibv_context* c, struct ibv_async_event* e), (c, e))                        \
  X(void, ibv_ack_async_event, (struct ibv_async_event* e), (e))                                                 \
  X(struct ibv_pd*, ibv_alloc_pd, (struct ibv_context* c), (c))                                                  \
  X(int, ibv_dealloc_pd, (struct ibv_pd* pd), (pd))                                                              \
  X(struct ibv_mr*, ibv_reg_mr_iova2,                                                                            \
    (struct ibv_pd* pd, void* addr, size_t length, uint64_t iova, unsigned int access),                          \
    (pd, addr, length, iova, access))                                                                            \
  X(int, ibv_dereg_mr, (struct ibv_mr* mr), (mr))                                                                \
  X(struct ibv_comp_channel*, ibv_create_comp_channel, (struct ibv_context* c), (c))                             \
  X(int, ibv_destroy_comp_channel, (struct ibv_comp_channel* ch), (ch))                                          \
  X(struct ibv_cq*, ibv_create_cq,                                                                               \
    (struct ibv_context* c, int cqe, void* ctx, struct ibv_comp_channel* ch, int vector),                        \
    (c, cqe, ctx, ch, vector))                                                                                   \
  X(int, ibv_destroy_cq, (struct ibv_cq* cq), (cq))                                                              \
  X(int, ibv_get_cq_event, (struct ibv_comp_channel* ch, struct ibv_cq** cq, void** ctx), (ch, cq, ctx))         \
  X(void, ibv_ack_cq_events, (struct ibv_cq* cq, unsigned int n), (cq, n))                                       \
  X(struct ibv_srq*, ibv_create_srq, (struct ibv_pd* pd, struct ibv_srq_init_attr* a), (pd, a))                  \
  X(int, ibv_destroy_srq, (struct ibv_srq* srq), (srq))                                                          \
  X(struct ibv_qp*, ibv_create_qp, (struct ibv_pd* pd, struct ibv_qp_init_attr* a), (pd, a))                     \
  X(int, ibv_modify_qp, (struct ibv_qp* qp, struct ibv_qp_attr* a, int mask), (qp, a, mask))                     \
  X(int, ibv_query_qp, (struct ibv_qp* qp, struct ibv_qp_attr* a, int mask, struct ibv_qp_init_attr* i),         \
    (qp, a, mask, i))                                                                                            \
  X(int, ibv_destroy_qp, (struct ibv_qp* qp), (qp))

namespace {
constexpr rv::LibrarySpec kLibrary{"libibverbs", "RDMA_SESSION_LIBIBVERBS", "libibverbs.so.1", "v22"};
}  // namespace

RV_DYNAMIC_LIBRARY(RV_IBV_FUNCTIONS)

namespace rv {

void RequireLibibverbs(Napi::Env env) {
  RequireLoaded(env, kLibrary, LoadedLibrary(), "ERR_LIBIBVERBS_MISSING",
                "");
}

// libibverbs() -> { loaded: true, file } | { loaded: false, file, error }: opens it on first call.
Napi::Value LibibverbsStatus(const Napi::CallbackInfo& info) { return LibraryStatus(info.Env(), LoadedLibrary()); }

}  // namespace rv
