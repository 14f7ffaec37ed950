// cm.h - the addon's rdma_cm binding (cm.cc, librdmacm.cc): one event channel per CmChannel,
// watched by uv_poll, and the rdma_cm_ids made on it, named by small integer handles.
#pragma once
#include "verbs.h"
#include <rdma/rdma_cma.h>

namespace rv {

// librdmacm.cc: librdmacm is opened with dlopen on first use (new CmChannel). RequireLibrdmacm
// throws a JS Error (code ERR_LIBRDMACM_MISSING) when it cannot be; LibrdmacmStatus is the binding's librdmacm().
void RequireLibrdmacm(Napi::Env env);
Napi::Value LibrdmacmStatus(const Napi::CallbackInfo& info);

void InitCm(Napi::Env env, Napi::Object exports);

// CmChannel: an rdma_event_channel on uv_poll and its rdma_cm_ids (RDMA_PS_TCP, RC). QPs are the
// caller's (made by the provider on its PD and CQs): connect/accept pass their QP number, and
// initQpAttr gives the attributes rdma_cm computed for each state, so the caller moves the QP.
class CmChannel : public Napi::ObjectWrap<CmChannel> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CmChannel(const Napi::CallbackInfo& info);
  ~CmChannel() override;

 private:
  Napi::Value CreateId(const Napi::CallbackInfo& info);
  Napi::Value DestroyId(const Napi::CallbackInfo& info);
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value ResolveAddr(const Napi::CallbackInfo& info);
  Napi::Value ResolveRoute(const Napi::CallbackInfo& info);
  Napi::Value InitQpAttr(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value Reject(const Napi::CallbackInfo& info);
  Napi::Value Establish(const Napi::CallbackInfo& info);
  Napi::Value Disconnect(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  rdma_cm_id* IdOf(Napi::Env env, const Napi::Value& handle) const;
  static void OnReadable(uv_poll_t* handle, int status, int events);
  void DrainEvents();
  void Shutdown();

  rdma_event_channel* channel_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference onEvent_;
  std::map<uint32_t, rdma_cm_id*> ids_;
  uint32_t nextHandle_ = 1;
};

}  // namespace rv
