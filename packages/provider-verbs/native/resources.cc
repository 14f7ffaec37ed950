// resources.cc - Pd, Mr (registered Buffer memory, kept referenced), Cq (event or poll mode) and Srq.
#include "verbs.h"
#include <cerrno>
#include <cstring>

namespace rv {

// ---- Pd ---------------------------------------------------------------------------------------

Napi::Function Pd::Define(Napi::Env env) {
  return DefineClass(env, "Pd", {InstanceMethod<&Pd::Dealloc>("dealloc")});
}

// new Pd(device)
Pd::Pd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Pd>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowUsage(env, "Pd(device): device expected");
  device_ = Device::Unwrap(info[0].As<Napi::Object>());
  device_->CheckOpen(env);
  pd_ = ibv_alloc_pd(device_->ctx());
  if (pd_ == nullptr) ThrowVerbs(env, "ibv_alloc_pd", errno ? errno : ENOMEM);
  deviceRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  device_->pds.insert(this);
}

Pd::~Pd() {
  if (EnvTearingDown(Env())) Abandon();
  else Release();
}

void Pd::Abandon() {
  if (pd_ == nullptr) return;
  ibv_dealloc_pd(pd_);
  pd_ = nullptr;
  device_->pds.erase(this);
  deviceRef_.SuppressDestruct();
}

void Pd::CheckOpen(Napi::Env env) const {
  if (pd_ == nullptr) ThrowUsage(env, "protection domain is deallocated");
}

void Pd::Release() {
  if (pd_ == nullptr) return;
  ibv_dealloc_pd(pd_);
  pd_ = nullptr;
  device_->pds.erase(this);
  deviceRef_.Reset();
}

Napi::Value Pd::Dealloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (pd_ == nullptr) return env.Undefined();
  int rc = ibv_dealloc_pd(pd_);
  if (rc != 0) ThrowVerbs(env, "ibv_dealloc_pd", rc, "deregister its memory regions and destroy its QPs first");
  pd_ = nullptr;
  device_->pds.erase(this);
  deviceRef_.Reset();
  return env.Undefined();
}

// ---- Mr ---------------------------------------------------------------------------------------

Napi::Function Mr::Define(Napi::Env env) {
  return DefineClass(env, "Mr", {InstanceMethod<&Mr::Dereg>("dereg")});
}

// new Mr(pd, typedArrayOrBuffer, access) -> this.lkey, this.rkey, this.addr, this.length
Mr::Mr(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mr>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsTypedArray() || !info[2].IsNumber()) ThrowUsage(env, "Mr(pd, typedArray, access)");
  Pd* pd = Pd::Unwrap(info[0].As<Napi::Object>());
  pd->CheckOpen(env);
  Napi::TypedArray ta = info[1].As<Napi::TypedArray>();
  Napi::ArrayBuffer ab = ta.ArrayBuffer();  // materializes on-heap typed arrays: the pointer is stable from here on
  uint8_t* base = static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset();
  size_t length = ta.ByteLength();
  int access = static_cast<int>(info[2].As<Napi::Number>().Uint32Value());
  // ibv_reg_mr wants a non-null address even for an empty region.
  static uint8_t empty[8];
  void* addr = length == 0 ? static_cast<void*>(empty) : static_cast<void*>(base);
  mr_ = ibv_reg_mr(pd->pd(), addr, length, access);
  if (mr_ == nullptr) {
    int err = errno ? errno : ENOMEM;
    ThrowVerbs(env, "ibv_reg_mr", err, std::to_string(length) + " bytes, access 0x" + std::to_string(access) +
                                           (err == ENOMEM || err == EAGAIN ? " (is RLIMIT_MEMLOCK too low? try ulimit -l unlimited)" : ""));
  }
  device_ = pd->device();
  device_->mrs.insert(this);
  pdRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  memoryRef_ = Napi::Persistent(ab);
  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("lkey", Napi::Number::New(env, mr_->lkey));
  self.Set("rkey", Napi::Number::New(env, mr_->rkey));
  self.Set("addr", Napi::Number::New(env, static_cast<double>(reinterpret_cast<uintptr_t>(addr))));
  self.Set("length", Napi::Number::New(env, static_cast<double>(length)));
}

Mr::~Mr() {
  if (EnvTearingDown(Env())) Abandon();
  else Release();
}

void Mr::Abandon() {
  if (mr_ == nullptr) return;
  ibv_dereg_mr(mr_);
  mr_ = nullptr;
  device_->mrs.erase(this);
  pdRef_.SuppressDestruct();
  memoryRef_.SuppressDestruct();
}

void Mr::Release() {
  if (mr_ == nullptr) return;
  ibv_dereg_mr(mr_);
  mr_ = nullptr;
  device_->mrs.erase(this);
  pdRef_.Reset();
  memoryRef_.Reset();
}

Napi::Value Mr::Dereg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (mr_ == nullptr) return env.Undefined();
  int rc = ibv_dereg_mr(mr_);
  if (rc != 0) ThrowVerbs(env, "ibv_dereg_mr", rc);
  mr_ = nullptr;
  device_->mrs.erase(this);
  pdRef_.Reset();
  memoryRef_.Reset();
  return env.Undefined();
}

// ---- Cq ---------------------------------------------------------------------------------------

Napi::Function Cq::Define(Napi::Env env) {
  return DefineClass(env, "Cq", {
    InstanceMethod<&Cq::Poll>("poll"),
    InstanceMethod<&Cq::SetNotify>("setNotify"),
    InstanceMethod<&Cq::Destroy>("destroy"),
  });
}

// new Cq(device, depth, eventMode) -> this.depth (the depth the device gave)
Cq::Cq(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Cq>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsNumber()) ThrowUsage(env, "Cq(device, depth, eventMode)");
  device_ = Device::Unwrap(info[0].As<Napi::Object>());
  device_->CheckOpen(env);
  int depth = static_cast<int>(info[1].As<Napi::Number>().Int32Value());
  eventMode_ = info[2].ToBoolean().Value();
  id_ = device_->AddCq(this);
  cq_ = ibv_create_cq(device_->ctx(), depth, reinterpret_cast<void*>(static_cast<uintptr_t>(id_)),
                      eventMode_ ? device_->channel() : nullptr, 0);
  if (cq_ == nullptr) {
    int err = errno ? errno : ENOMEM;
    device_->RemoveCq(id_);
    ThrowVerbs(env, "ibv_create_cq", err, "depth " + std::to_string(depth));
  }
  if (eventMode_) {
    int rc = ibv_req_notify_cq(cq_, 0);
    if (rc != 0) {
      ibv_destroy_cq(cq_);
      cq_ = nullptr;
      device_->RemoveCq(id_);
      ThrowVerbs(env, "ibv_req_notify_cq", rc);
    }
  }
  deviceRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  info.This().As<Napi::Object>().Set("depth", Napi::Number::New(env, cq_->cqe));
}

Cq::~Cq() {
  if (EnvTearingDown(Env())) Abandon();
  else Release();
}

void Cq::Abandon() {
  if (cq_ == nullptr) return;
  ibv_destroy_cq(cq_);
  cq_ = nullptr;
  device_->RemoveCq(id_);
  notify_.SuppressDestruct();
  deviceRef_.SuppressDestruct();
}

void Cq::CheckOpen(Napi::Env env) const {
  if (cq_ == nullptr) ThrowUsage(env, "completion queue is destroyed");
}

void Cq::Release() {
  if (cq_ == nullptr) return;
  ibv_destroy_cq(cq_);
  cq_ = nullptr;
  device_->RemoveCq(id_);
  notify_.Reset();
  deviceRef_.Reset();
}

void Cq::Notify() {
  if (notify_.IsEmpty()) return;
  try {
    notify_.MakeCallback(Env().Global(), {});
  } catch (const Napi::Error& err) {
    napi_fatal_exception(Env(), err.Value());
  }
}

Napi::Value Cq::SetNotify(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowUsage(info.Env(), "setNotify(fn)");
  notify_ = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

static uint32_t RecvOpcodeCode(const ibv_wc& wc) {
  if (wc.status == IBV_WC_SUCCESS && wc.opcode == IBV_WC_RECV_RDMA_WITH_IMM) return kOpRecvRdmaWithImm;
  return kOpRecv;
}

// poll(max): writes up to max completions (<= 256) into the shared record buffer; returns the count.
Napi::Value Cq::Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  AddonData* data = Data(env);
  uint32_t max = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 16;
  if (max > wcrec::kMax) max = wcrec::kMax;
  ibv_wc wcs[32];
  uint32_t total = 0;
  while (total < max) {
    int want = static_cast<int>(std::min<uint32_t>(32, max - total));
    int n = ibv_poll_cq(cq_, want, wcs);
    if (n < 0) ThrowVerbs(env, "ibv_poll_cq", EIO);
    for (int i = 0; i < n; i++) {
      const ibv_wc& wc = wcs[i];
      uint32_t* r = data->wc + (total + i) * wcrec::kWords;
      uint64_t id = wc.wr_id & kWrIdMask;
      uint32_t tag = static_cast<uint32_t>(wc.wr_id >> kTagShift);
      uint32_t code = tag == 0xff ? RecvOpcodeCode(wc) : tag;
      if (wc.status == IBV_WC_SUCCESS && (wc.wc_flags & IBV_WC_WITH_IMM)) code |= kOpWithImmFlag;
      r[0] = static_cast<uint32_t>(id);
      r[1] = static_cast<uint32_t>(id >> 32);
      r[2] = static_cast<uint32_t>(wc.status);
      r[3] = code;
      r[4] = wc.byte_len;
      r[5] = wc.qp_num;
      r[6] = ntohl(wc.imm_data);
      r[7] = wc.vendor_err;
    }
    total += static_cast<uint32_t>(n);
    if (n < want) break;
  }
  return Napi::Number::New(env, total);
}

Napi::Value Cq::Destroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (cq_ == nullptr) return env.Undefined();
  int rc = ibv_destroy_cq(cq_);
  if (rc != 0) ThrowVerbs(env, "ibv_destroy_cq", rc, "destroy the QPs that use it first");
  cq_ = nullptr;
  device_->RemoveCq(id_);
  notify_.Reset();
  deviceRef_.Reset();
  return env.Undefined();
}

// ---- Srq --------------------------------------------------------------------------------------

Napi::Function Srq::Define(Napi::Env env) {
  return DefineClass(env, "Srq", {
    InstanceMethod<&Srq::PostRecv>("postRecv"),
    InstanceMethod<&Srq::Destroy>("destroy"),
  });
}

// new Srq(pd, maxWr, maxSge) -> this.maxWr, this.maxSge
Srq::Srq(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Srq>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsNumber() || !info[2].IsNumber()) ThrowUsage(env, "Srq(pd, maxWr, maxSge)");
  Pd* pd = Pd::Unwrap(info[0].As<Napi::Object>());
  pd->CheckOpen(env);
  ibv_srq_init_attr init{};
  init.attr.max_wr = info[1].As<Napi::Number>().Uint32Value();
  init.attr.max_sge = info[2].As<Napi::Number>().Uint32Value();
  srq_ = ibv_create_srq(pd->pd(), &init);
  if (srq_ == nullptr) ThrowVerbs(env, "ibv_create_srq", errno ? errno : ENOMEM);
  device_ = pd->device();
  device_->srqs.insert(this);
  pdRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("maxWr", Napi::Number::New(env, init.attr.max_wr));
  self.Set("maxSge", Napi::Number::New(env, init.attr.max_sge));
}

Srq::~Srq() {
  if (EnvTearingDown(Env())) Abandon();
  else Release();
}

void Srq::Abandon() {
  if (srq_ == nullptr) return;
  ibv_destroy_srq(srq_);
  srq_ = nullptr;
  device_->srqs.erase(this);
  pdRef_.SuppressDestruct();
}

void Srq::CheckOpen(Napi::Env env) const {
  if (srq_ == nullptr) ThrowUsage(env, "shared receive queue is destroyed");
}

void Srq::Release() {
  if (srq_ == nullptr) return;
  ibv_destroy_srq(srq_);
  srq_ = nullptr;
  device_->srqs.erase(this);
  pdRef_.Reset();
}

// postRecv(): one receive WR from the shared descriptor (wrId, SGEs).
Napi::Value Srq::PostRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  const uint8_t* d = Data(env)->desc;
  ibv_sge sges[desc::kMaxSge];
  ibv_recv_wr wr{};
  double wrId;
  std::memcpy(&wrId, d + desc::kWrId, 8);
  wr.wr_id = (static_cast<uint64_t>(wrId) & kWrIdMask) | (uint64_t(0xff) << kTagShift);
  wr.sg_list = sges;
  wr.num_sge = ReadSges(d, sges, desc::kMaxSge);
  ibv_recv_wr* bad = nullptr;
  int rc = ibv_post_srq_recv(srq_, &wr, &bad);
  if (rc != 0) ThrowVerbs(env, "ibv_post_srq_recv", rc);
  return env.Undefined();
}

Napi::Value Srq::Destroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (srq_ == nullptr) return env.Undefined();
  int rc = ibv_destroy_srq(srq_);
  if (rc != 0) ThrowVerbs(env, "ibv_destroy_srq", rc, "destroy the QPs that use it first");
  srq_ = nullptr;
  device_->srqs.erase(this);
  pdRef_.Reset();
  return env.Undefined();
}

}  // namespace rv
