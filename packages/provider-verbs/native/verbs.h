// verbs.h - shared declarations of the rdma_verbs addon: per-env state, the object wrappers
// (Device, Pd, Mr, Cq, Srq, Qp) and the error helpers.
#pragma once
#include <napi.h>
#include <infiniband/verbs.h>
#include <uv.h>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace rv {

class Device;
class Pd;
class Cq;
class Qp;
class Mr;
class Srq;

// Layout of the shared work-request descriptor JS fills before postSend/postRecv (byte offsets).
namespace desc {
constexpr size_t kWrId = 0;          // f64
constexpr size_t kRemoteAddr = 8;    // f64
constexpr size_t kCompareAdd = 16;   // u64
constexpr size_t kSwap = 24;         // u64
constexpr size_t kOpcode = 32;       // u32: index into kSendOpcodes
constexpr size_t kFlags = 36;        // u32: bit 0 signaled, bit 1 inline
constexpr size_t kImm = 40;          // u32 (host order)
constexpr size_t kRkey = 44;         // u32
constexpr size_t kNumSge = 48;       // u32
constexpr size_t kSges = 56;         // n x { f64 addr, u32 length, u32 lkey }
constexpr size_t kSgeSize = 16;
constexpr uint32_t kMaxSge = 32;
constexpr size_t kBytes = kSges + kMaxSge * kSgeSize;
}  // namespace desc

// Completion records poll() writes: 8 x u32 per completion.
namespace wcrec {
constexpr size_t kWords = 8;  // wrIdLo, wrIdHi, status, opcode code, byteLen, qpNum, imm, vendorErr
constexpr size_t kMax = 256;
}  // namespace wcrec

// Tags kept in wr_id's top bits so a completion names its opcode even when ibv_wc.opcode is undefined (errors).
constexpr int kTagShift = 56;
constexpr uint64_t kWrIdMask = (uint64_t(1) << 53) - 1;
constexpr uint32_t kOpRecv = 7;
constexpr uint32_t kOpRecvRdmaWithImm = 8;
constexpr uint32_t kOpWithImmFlag = 0x10;

// True once the env's cleanup hook has run: from then on destructors make no Node-API call.
bool EnvTearingDown(napi_env env);
void SetEnvTearingDown(napi_env env, bool on);

// A send WR encoded once (prepareSend) and posted many times by handle (postPrepared): the
// ibv_send_wr and its SGEs live here. Inline data points into a JS ArrayBuffer kept referenced,
// so JS updates the bytes in place and the post reads them.
struct PreparedSend {
  Qp* qp = nullptr;  // nullptr: free slot
  uint32_t gen = 0;  // bumped each time the slot is taken; part of the handle, so stale handles fail
  ibv_send_wr wr{};
  ibv_sge sges[desc::kMaxSge]{};
  napi_ref inlineRef = nullptr;  // the ArrayBuffer under the inline bytes
};

// Handles: slot index in the low 20 bits, the slot's generation above (a JS safe integer).
constexpr uint32_t kPreparedIndexBits = 20;
constexpr uint32_t kMaxPrepared = 1u << kPreparedIndexBits;
// postPrepared's results besides 0 and errno values.
constexpr int kPreparedBadHandle = -1;      // never issued, released, or its QP is destroyed
constexpr int kPreparedInlineDetached = -2; // the inline data's ArrayBuffer was detached (transferred)
constexpr int kPreparedMixedQps = -3;       // postPreparedList: handles of more than one QP

struct AddonData {
  Napi::FunctionReference deviceCtor, pdCtor, mrCtor, cqCtor, srqCtor, qpCtor;
  Napi::FunctionReference errorFactory;  // (verb, errno, message) => Error
  Napi::Reference<Napi::ArrayBuffer> descRef, wcRef;
  uint8_t* desc = nullptr;
  uint32_t* wc = nullptr;
  std::map<uint32_t, Device*> devices;
  std::vector<std::unique_ptr<PreparedSend>> prepared;
  std::vector<uint32_t> preparedFree;
  uint32_t preparedLive = 0;
  uint32_t nextId = 1;
  napi_env env = nullptr;
  ~AddonData() { SetEnvTearingDown(env, false); }
};

AddonData* Data(Napi::Env env);

// Throws a JS error for a failed verbs call: code ERR_VERBS, errno, its name and strerror text.
[[noreturn]] void ThrowVerbs(Napi::Env env, const char* verb, int err, const std::string& what = "");
// Throws a plain TypeError/Error for misuse (closed objects, wrong arguments).
[[noreturn]] void ThrowUsage(Napi::Env env, const std::string& message);

// libibverbs.cc: libibverbs is opened with dlopen on first use. RequireLibibverbs throws a JS
// Error (code ERR_LIBIBVERBS_MISSING) when it cannot be; LibibverbsStatus is the binding's libibverbs().
void RequireLibibverbs(Napi::Env env);
Napi::Value LibibverbsStatus(const Napi::CallbackInfo& info);
std::string ErrnoName(int err);


// Helpers for reading optional numeric properties.
bool GetU32(const Napi::Object& o, const char* key, uint32_t* out);

// qp-attr.cc: ibv_qp_attr fields as JS properties (accessFlags, pkeyIndex, portNum, pathMtu, destQpn,
// rqPsn, sqPsn, maxDestRdAtomic, minRnrTimer, timeout, retryCnt, rnrRetry, maxRdAtomic), and a GRH's
// (dgid as 16 bytes, sgidIndex, hopLimit, trafficClass).
void SetQpAttrs(Napi::Object o, const ibv_qp_attr& a);
void SetGrhAttrs(Napi::Env env, Napi::Object o, const ibv_global_route& grh);

void InitDevice(Napi::Env env, Napi::Object exports);
void InitResources(Napi::Env env, Napi::Object exports);
void InitQp(Napi::Env env, Napi::Object exports);
// Module functions of the prepared-send fast path (queue-pair.cc): postPrepared, postPreparedList, releasePrepared.
void InitPrepared(Napi::Env env, Napi::Object exports, AddonData* data);

// ---------------------------------------------------------------------------------------------
// Device: an open ibv_context with one completion channel and the async-event fd, both on uv_poll.
class Device : public Napi::ObjectWrap<Device> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Device(const Napi::CallbackInfo& info);
  ~Device() override;

  ibv_context* ctx() const { return ctx_; }
  ibv_comp_channel* channel() const { return channel_; }
  bool open() const { return ctx_ != nullptr; }
  void CheckOpen(Napi::Env env) const;

  // Children register so the device can report leaks and tear down in order at exit.
  uint32_t AddCq(Cq* cq);
  void RemoveCq(uint32_t id);
  uint32_t AddQp(Qp* qp);
  void RemoveQp(uint32_t id);
  Qp* FindQp(uint32_t id) const;
  std::set<Pd*> pds;
  std::set<Mr*> mrs;
  std::set<Srq*> srqs;
  size_t Children() const { return pds.size() + mrs.size() + srqs.size() + cqs_.size() + qps_.size(); }

  // Destroys every child still alive (QPs, SRQs, MRs, CQs, PDs) then the device; used at env teardown.
  // With `teardown`, no Node-API call is made (the env is going away): references are abandoned.
  void ForceClose(bool teardown = false);

 private:
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value QueryPort(const Napi::CallbackInfo& info);
  Napi::Value GidTable(const Napi::CallbackInfo& info);
  Napi::Value Watch(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  static void OnCompletionReadable(uv_poll_t* handle, int status, int events);
  static void OnAsyncReadable(uv_poll_t* handle, int status, int events);
  void DrainCompletionChannel();
  void DrainAsyncEvents();
  void StopWatching();

  Napi::Env env_;
  uint32_t id_;
  std::string name_;
  ibv_context* ctx_ = nullptr;
  ibv_comp_channel* channel_ = nullptr;
  uv_poll_t* compPoll_ = nullptr;
  uv_poll_t* asyncPoll_ = nullptr;
  Napi::FunctionReference onEvent_;  // (type, qpId, portNum, name) for async events
  std::map<uint32_t, Cq*> cqs_;
  std::map<uint32_t, Qp*> qps_;
  uint32_t nextChildId_ = 1;
  friend class Cq;
};

// Pd: a protection domain; keeps its device alive (JS reference) while allocated.
class Pd : public Napi::ObjectWrap<Pd> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Pd(const Napi::CallbackInfo& info);
  ~Pd() override;
  // Destroys the verbs object without any Node-API call (env teardown); the destructor then does nothing.
  void Abandon();
  ibv_pd* pd() const { return pd_; }
  Device* device() const { return device_; }
  void CheckOpen(Napi::Env env) const;
  void Release();

 private:
  Napi::Value Dealloc(const Napi::CallbackInfo& info);
  ibv_pd* pd_ = nullptr;
  Device* device_ = nullptr;
  Napi::ObjectReference deviceRef_;
};

// Mr: registered memory over a Buffer/TypedArray; the ArrayBuffer stays referenced until deregistered.
class Mr : public Napi::ObjectWrap<Mr> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Mr(const Napi::CallbackInfo& info);
  ~Mr() override;
  // Destroys the verbs object without any Node-API call (env teardown); the destructor then does nothing.
  void Abandon();
  void Release();

 private:
  Napi::Value Dereg(const Napi::CallbackInfo& info);
  ibv_mr* mr_ = nullptr;
  Device* device_ = nullptr;
  Napi::ObjectReference pdRef_;
  Napi::Reference<Napi::ArrayBuffer> memoryRef_;
};

// Cq: a completion queue on the device's completion channel (event mode) or without one (poll mode).
class Cq : public Napi::ObjectWrap<Cq> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Cq(const Napi::CallbackInfo& info);
  ~Cq() override;
  // Destroys the verbs object without any Node-API call (env teardown); the destructor then does nothing.
  void Abandon();
  ibv_cq* cq() const { return cq_; }
  void CheckOpen(Napi::Env env) const;
  void Release();
  void Notify();  // called by Device when the channel reported this CQ

 private:
  Napi::Value Poll(const Napi::CallbackInfo& info);
  Napi::Value SetNotify(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  ibv_cq* cq_ = nullptr;
  Device* device_ = nullptr;
  uint32_t id_ = 0;
  bool eventMode_ = false;
  Napi::ObjectReference deviceRef_;
  Napi::FunctionReference notify_;
};

// Srq: a shared receive queue.
class Srq : public Napi::ObjectWrap<Srq> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Srq(const Napi::CallbackInfo& info);
  ~Srq() override;
  // Destroys the verbs object without any Node-API call (env teardown); the destructor then does nothing.
  void Abandon();
  ibv_srq* srq() const { return srq_; }
  void CheckOpen(Napi::Env env) const;
  void Release();

 private:
  Napi::Value PostRecv(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  ibv_srq* srq_ = nullptr;
  Device* device_ = nullptr;
  Napi::ObjectReference pdRef_;
};

// Qp: an RC queue pair.
class Qp : public Napi::ObjectWrap<Qp> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Qp(const Napi::CallbackInfo& info);
  ~Qp() override;
  // Destroys the verbs object without any Node-API call (env teardown); the destructor then does nothing.
  void Abandon();
  void Release();
  Napi::Object JsObject() { return Value(); }
  ibv_qp* qp() const { return qp_; }

 private:
  Napi::Value Modify(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value PostSend(const Napi::CallbackInfo& info);
  Napi::Value PostRecv(const Napi::CallbackInfo& info);
  Napi::Value PrepareSend(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  // Frees the prepared WRs of this QP; with `teardown`, no Node-API call (their references are abandoned).
  void ReleasePrepared(bool teardown);
  AddonData* data_ = nullptr;
  ibv_qp* qp_ = nullptr;
  Device* device_ = nullptr;
  uint32_t id_ = 0;
  Napi::ObjectReference pdRef_, sendCqRef_, recvCqRef_, srqRef_;
};

// Fills ibv_sge entries from the descriptor; returns the count.
int ReadSges(const uint8_t* d, ibv_sge* sges, uint32_t max);

}  // namespace rv
