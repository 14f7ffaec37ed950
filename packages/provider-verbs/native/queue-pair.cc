// queue-pair.cc - Qp: RC queue pair create/modify/query/destroy and the post paths, which read
// the shared descriptor JS fills (no per-WR object marshalling).
#include "verbs.h"
#include <arpa/inet.h>
#include <cerrno>
#include <algorithm>
#include <cstring>

namespace rv {

static const ibv_wr_opcode kSendOpcodes[] = {
  IBV_WR_SEND, IBV_WR_SEND_WITH_IMM, IBV_WR_RDMA_WRITE, IBV_WR_RDMA_WRITE_WITH_IMM,
  IBV_WR_RDMA_READ, IBV_WR_ATOMIC_CMP_AND_SWP, IBV_WR_ATOMIC_FETCH_AND_ADD,
};
constexpr uint32_t kNumSendOpcodes = sizeof(kSendOpcodes) / sizeof(kSendOpcodes[0]);

int ReadSges(const uint8_t* d, ibv_sge* sges, uint32_t max) {
  uint32_t n;
  std::memcpy(&n, d + desc::kNumSge, 4);
  if (n > max) n = max;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t* s = d + desc::kSges + i * desc::kSgeSize;
    double addr;
    std::memcpy(&addr, s, 8);
    sges[i].addr = static_cast<uint64_t>(addr);
    std::memcpy(&sges[i].length, s + 8, 4);
    std::memcpy(&sges[i].lkey, s + 12, 4);
  }
  return static_cast<int>(n);
}

Napi::Function Qp::Define(Napi::Env env) {
  return DefineClass(env, "Qp", {
    InstanceMethod<&Qp::Modify>("modify"),
    InstanceMethod<&Qp::Query>("query"),
    InstanceMethod<&Qp::PostSend>("postSend"),
    InstanceMethod<&Qp::PostRecv>("postRecv"),
    InstanceMethod<&Qp::PrepareSend>("prepareSend"),
    InstanceMethod<&Qp::Destroy>("destroy"),
  });
}

static Napi::Object CapsObject(Napi::Env env, const ibv_qp_cap& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("maxSendWr", c.max_send_wr);
  o.Set("maxRecvWr", c.max_recv_wr);
  o.Set("maxSendSge", c.max_send_sge);
  o.Set("maxRecvSge", c.max_recv_sge);
  o.Set("maxInlineData", c.max_inline_data);
  return o;
}

// new Qp(pd, sendCq, recvCq, { maxSendWr, maxRecvWr, maxSendSge, maxRecvSge, maxInlineData }, srq?)
// -> this.qpn, this.caps (what the device gave), this.id (for async events)
Qp::Qp(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Qp>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject() || !info[2].IsObject() || !info[3].IsObject()) {
    ThrowUsage(env, "Qp(pd, sendCq, recvCq, caps, srq?)");
  }
  Pd* pd = Pd::Unwrap(info[0].As<Napi::Object>());
  pd->CheckOpen(env);
  Cq* scq = Cq::Unwrap(info[1].As<Napi::Object>());
  Cq* rcq = Cq::Unwrap(info[2].As<Napi::Object>());
  scq->CheckOpen(env);
  rcq->CheckOpen(env);
  Srq* srq = nullptr;
  if (info.Length() > 4 && info[4].IsObject()) {
    srq = Srq::Unwrap(info[4].As<Napi::Object>());
    srq->CheckOpen(env);
  }
  Napi::Object caps = info[3].As<Napi::Object>();
  ibv_qp_init_attr init{};
  init.send_cq = scq->cq();
  init.recv_cq = rcq->cq();
  init.srq = srq ? srq->srq() : nullptr;
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  GetU32(caps, "maxSendWr", &init.cap.max_send_wr);
  GetU32(caps, "maxRecvWr", &init.cap.max_recv_wr);
  GetU32(caps, "maxSendSge", &init.cap.max_send_sge);
  GetU32(caps, "maxRecvSge", &init.cap.max_recv_sge);
  GetU32(caps, "maxInlineData", &init.cap.max_inline_data);
  if (srq) {
    init.cap.max_recv_wr = 0;
    init.cap.max_recv_sge = 0;
  }
  device_ = pd->device();
  data_ = Data(env);
  id_ = device_->AddQp(this);
  init.qp_context = reinterpret_cast<void*>(static_cast<uintptr_t>(id_));
  qp_ = ibv_create_qp(pd->pd(), &init);
  if (qp_ == nullptr) {
    int err = errno ? errno : ENOMEM;
    device_->RemoveQp(id_);
    ThrowVerbs(env, "ibv_create_qp", err,
               "send/recv WRs " + std::to_string(init.cap.max_send_wr) + "/" + std::to_string(init.cap.max_recv_wr) +
                   ", SGEs " + std::to_string(init.cap.max_send_sge) + "/" + std::to_string(init.cap.max_recv_sge) +
                   ", inline " + std::to_string(init.cap.max_inline_data));
  }
  pdRef_ = Napi::Persistent(info[0].As<Napi::Object>());
  sendCqRef_ = Napi::Persistent(info[1].As<Napi::Object>());
  recvCqRef_ = Napi::Persistent(info[2].As<Napi::Object>());
  if (srq) srqRef_ = Napi::Persistent(info[4].As<Napi::Object>());
  Napi::Object self = info.This().As<Napi::Object>();
  self.Set("qpn", Napi::Number::New(env, qp_->qp_num));
  self.Set("id", Napi::Number::New(env, id_));
  self.Set("caps", CapsObject(env, init.cap));
}

Qp::~Qp() {
  if (EnvTearingDown(Env())) Abandon();
  else Release();
}

void Qp::Abandon() {
  if (qp_ == nullptr) return;
  ReleasePrepared(true);
  ibv_destroy_qp(qp_);
  qp_ = nullptr;
  device_->RemoveQp(id_);
  pdRef_.SuppressDestruct();
  sendCqRef_.SuppressDestruct();
  recvCqRef_.SuppressDestruct();
  srqRef_.SuppressDestruct();
}

void Qp::Release() {
  if (qp_ == nullptr) return;
  ReleasePrepared(false);
  ibv_destroy_qp(qp_);
  qp_ = nullptr;
  device_->RemoveQp(id_);
  pdRef_.Reset();
  sendCqRef_.Reset();
  recvCqRef_.Reset();
  srqRef_.Reset();
}

Napi::Value Qp::Destroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (qp_ == nullptr) return env.Undefined();
  int rc = ibv_destroy_qp(qp_);
  if (rc != 0) ThrowVerbs(env, "ibv_destroy_qp", rc);
  ReleasePrepared(false);
  qp_ = nullptr;
  device_->RemoveQp(id_);
  pdRef_.Reset();
  sendCqRef_.Reset();
  recvCqRef_.Reset();
  srqRef_.Reset();
  return env.Undefined();
}

static std::string MaskNames(int mask) {
  static const std::pair<int, const char*> names[] = {
    {IBV_QP_STATE, "state"}, {IBV_QP_ACCESS_FLAGS, "accessFlags"}, {IBV_QP_PKEY_INDEX, "pkeyIndex"},
    {IBV_QP_PORT, "portNum"}, {IBV_QP_AV, "remote (address vector)"}, {IBV_QP_PATH_MTU, "pathMtu"},
    {IBV_QP_DEST_QPN, "destQpn"}, {IBV_QP_RQ_PSN, "rqPsn"}, {IBV_QP_MAX_DEST_RD_ATOMIC, "maxDestRdAtomic"},
    {IBV_QP_MIN_RNR_TIMER, "minRnrTimer"}, {IBV_QP_SQ_PSN, "sqPsn"}, {IBV_QP_TIMEOUT, "timeout"},
    {IBV_QP_RETRY_CNT, "retryCnt"}, {IBV_QP_RNR_RETRY, "rnrRetry"}, {IBV_QP_MAX_QP_RD_ATOMIC, "maxRdAtomic"},
  };
  std::string s;
  for (auto& n : names) {
    if (mask & n.first) s += (s.empty() ? "" : ", ") + std::string(n.second);
  }
  return s;
}

// modify({ qpState, accessFlags?, pkeyIndex?, portNum?, pathMtu? (IBV_MTU_*), destQpn?, rqPsn?,
//          maxDestRdAtomic?, minRnrTimer?, sqPsn?, timeout?, retryCnt?, rnrRetry?, maxRdAtomic?,
//          ah?: { dgid: Uint8Array(16), sgidIndex, hopLimit, trafficClass, flowLabel, sl, portNum } })
Napi::Value Qp::Modify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (qp_ == nullptr) ThrowUsage(env, "queue pair is destroyed");
  if (!info[0].IsObject()) ThrowUsage(env, "modify(attrs)");
  Napi::Object a = info[0].As<Napi::Object>();
  ibv_qp_attr attr{};
  int mask = 0;
  uint32_t v;
  if (GetU32(a, "qpState", &v)) { attr.qp_state = static_cast<ibv_qp_state>(v); mask |= IBV_QP_STATE; }
  if (GetU32(a, "accessFlags", &v)) { attr.qp_access_flags = v; mask |= IBV_QP_ACCESS_FLAGS; }
  if (GetU32(a, "pkeyIndex", &v)) { attr.pkey_index = static_cast<uint16_t>(v); mask |= IBV_QP_PKEY_INDEX; }
  if (GetU32(a, "portNum", &v)) { attr.port_num = static_cast<uint8_t>(v); mask |= IBV_QP_PORT; }
  if (GetU32(a, "pathMtu", &v)) { attr.path_mtu = static_cast<ibv_mtu>(v); mask |= IBV_QP_PATH_MTU; }
  if (GetU32(a, "destQpn", &v)) { attr.dest_qp_num = v; mask |= IBV_QP_DEST_QPN; }
  if (GetU32(a, "rqPsn", &v)) { attr.rq_psn = v; mask |= IBV_QP_RQ_PSN; }
  if (GetU32(a, "maxDestRdAtomic", &v)) { attr.max_dest_rd_atomic = static_cast<uint8_t>(v); mask |= IBV_QP_MAX_DEST_RD_ATOMIC; }
  if (GetU32(a, "minRnrTimer", &v)) { attr.min_rnr_timer = static_cast<uint8_t>(v); mask |= IBV_QP_MIN_RNR_TIMER; }
  if (GetU32(a, "sqPsn", &v)) { attr.sq_psn = v; mask |= IBV_QP_SQ_PSN; }
  if (GetU32(a, "timeout", &v)) { attr.timeout = static_cast<uint8_t>(v); mask |= IBV_QP_TIMEOUT; }
  if (GetU32(a, "retryCnt", &v)) { attr.retry_cnt = static_cast<uint8_t>(v); mask |= IBV_QP_RETRY_CNT; }
  if (GetU32(a, "rnrRetry", &v)) { attr.rnr_retry = static_cast<uint8_t>(v); mask |= IBV_QP_RNR_RETRY; }
  if (GetU32(a, "maxRdAtomic", &v)) { attr.max_rd_atomic = static_cast<uint8_t>(v); mask |= IBV_QP_MAX_QP_RD_ATOMIC; }
  Napi::Value ahv = a.Get("ah");
  if (ahv.IsObject()) {
    Napi::Object ah = ahv.As<Napi::Object>();
    Napi::Value dgid = ah.Get("dgid");
    if (!dgid.IsTypedArray() || dgid.As<Napi::TypedArray>().ByteLength() != 16) ThrowUsage(env, "ah.dgid must be 16 bytes");
    Napi::TypedArray g = dgid.As<Napi::TypedArray>();
    std::memcpy(attr.ah_attr.grh.dgid.raw, static_cast<uint8_t*>(g.ArrayBuffer().Data()) + g.ByteOffset(), 16);
    attr.ah_attr.is_global = 1;
    if (GetU32(ah, "sgidIndex", &v)) attr.ah_attr.grh.sgid_index = static_cast<uint8_t>(v);
    attr.ah_attr.grh.hop_limit = GetU32(ah, "hopLimit", &v) ? static_cast<uint8_t>(v) : 64;
    if (GetU32(ah, "trafficClass", &v)) attr.ah_attr.grh.traffic_class = static_cast<uint8_t>(v);
    if (GetU32(ah, "flowLabel", &v)) attr.ah_attr.grh.flow_label = v;
    if (GetU32(ah, "sl", &v)) attr.ah_attr.sl = static_cast<uint8_t>(v);
    attr.ah_attr.port_num = GetU32(ah, "portNum", &v) ? static_cast<uint8_t>(v) : 1;
    mask |= IBV_QP_AV;
  }
  int rc = ibv_modify_qp(qp_, &attr, mask);
  if (rc != 0) ThrowVerbs(env, "ibv_modify_qp", rc, "attributes: " + MaskNames(mask));
  return env.Undefined();
}

Napi::Value Qp::Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (qp_ == nullptr) ThrowUsage(env, "queue pair is destroyed");
  ibv_qp_attr a{};
  ibv_qp_init_attr init{};
  int mask = IBV_QP_STATE | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_AV | IBV_QP_PATH_MTU |
             IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER | IBV_QP_SQ_PSN |
             IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_CAP;
  int rc = ibv_query_qp(qp_, &a, mask, &init);
  if (rc != 0) ThrowVerbs(env, "ibv_query_qp", rc);
  Napi::Object o = Napi::Object::New(env);
  o.Set("qpState", static_cast<uint32_t>(a.qp_state));
  SetQpAttrs(o, a);
  Napi::Object ah = Napi::Object::New(env);
  SetGrhAttrs(env, ah, a.ah_attr.grh);
  ah.Set("flowLabel", a.ah_attr.grh.flow_label);
  ah.Set("sl", a.ah_attr.sl);
  o.Set("ah", ah);
  o.Set("caps", CapsObject(env, a.cap));
  return o;
}

// Fills `wr` (and `sges`) from the shared descriptor. The caller sets the inline SGE, if any.
static void DecodeSend(Napi::Env env, const uint8_t* d, ibv_send_wr& wr, ibv_sge* sges, bool inlineData) {
  double wrId, remoteAddr;
  uint32_t opcode, flags, imm, rkey;
  std::memcpy(&wrId, d + desc::kWrId, 8);
  std::memcpy(&remoteAddr, d + desc::kRemoteAddr, 8);
  std::memcpy(&opcode, d + desc::kOpcode, 4);
  std::memcpy(&flags, d + desc::kFlags, 4);
  std::memcpy(&imm, d + desc::kImm, 4);
  std::memcpy(&rkey, d + desc::kRkey, 4);
  if (opcode >= kNumSendOpcodes) ThrowUsage(env, "unknown send opcode");
  wr.wr_id = (static_cast<uint64_t>(wrId) & kWrIdMask) | (static_cast<uint64_t>(opcode) << kTagShift);
  wr.opcode = kSendOpcodes[opcode];
  wr.send_flags = (flags & 1) ? IBV_SEND_SIGNALED : 0;
  wr.sg_list = sges;
  if (inlineData) {
    wr.send_flags |= IBV_SEND_INLINE;
  } else {
    wr.num_sge = ReadSges(d, sges, desc::kMaxSge);
  }
  switch (wr.opcode) {
    case IBV_WR_SEND_WITH_IMM:
      wr.imm_data = htonl(imm);
      break;
    case IBV_WR_RDMA_WRITE_WITH_IMM:
      wr.imm_data = htonl(imm);
      [[fallthrough]];
    case IBV_WR_RDMA_WRITE:
    case IBV_WR_RDMA_READ:
      wr.wr.rdma.remote_addr = static_cast<uint64_t>(remoteAddr);
      wr.wr.rdma.rkey = rkey;
      break;
    case IBV_WR_ATOMIC_CMP_AND_SWP:
    case IBV_WR_ATOMIC_FETCH_AND_ADD:
      wr.wr.atomic.remote_addr = static_cast<uint64_t>(remoteAddr);
      wr.wr.atomic.rkey = rkey;
      std::memcpy(&wr.wr.atomic.compare_add, d + desc::kCompareAdd, 8);
      std::memcpy(&wr.wr.atomic.swap, d + desc::kSwap, 8);
      break;
    default:
      break;
  }
}

// postSend(inline?): one send WR from the shared descriptor; `inline` (a Uint8Array) is copied now.
// Returns 0, or the errno of ibv_post_send (ENOMEM: send queue full) so JS can name the failure.
Napi::Value Qp::PostSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (qp_ == nullptr) ThrowUsage(env, "queue pair is destroyed");
  const uint8_t* d = data_->desc;
  ibv_sge sges[desc::kMaxSge];
  ibv_send_wr wr{};
  bool inlineData = info.Length() > 0 && info[0].IsTypedArray();
  DecodeSend(env, d, wr, sges, inlineData);
  if (inlineData) {
    // One napi call for pointer and length (node-addon-api's accessors make one each).
    napi_typedarray_type type;
    size_t len = 0;
    void* p = nullptr;
    if (napi_get_typedarray_info(env, info[0], &type, &len, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
      ThrowUsage(env, "inline data must be a Uint8Array");
    }
    if (len > 0) {
      sges[0].addr = reinterpret_cast<uintptr_t>(p);
      sges[0].length = static_cast<uint32_t>(len);
      sges[0].lkey = 0;
      wr.num_sge = 1;
    }
  }
  ibv_send_wr* bad = nullptr;
  int rc = ibv_post_send(qp_, &wr, &bad);
  return Napi::Number::New(env, rc);
}

// prepareSend(inline?): encodes the send WR in the shared descriptor once and returns a handle for
// postPrepared(). With `inline` (a Uint8Array), the WR is inline and each post reads the array's
// bytes as they are then: its ArrayBuffer stays referenced until the handle is released.
Napi::Value Qp::PrepareSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (qp_ == nullptr) ThrowUsage(env, "queue pair is destroyed");
  AddonData* data = data_;
  if (data->preparedLive >= kMaxPrepared - 1) ThrowUsage(env, "too many prepared send WRs (release some)");
  auto p = std::make_unique<PreparedSend>();
  bool inlineData = info.Length() > 0 && info[0].IsTypedArray();
  DecodeSend(env, data->desc, p->wr, p->sges, inlineData);
  if (inlineData) {
    napi_typedarray_type type;
    size_t len = 0, offset = 0;
    napi_value ab;
    if (napi_get_typedarray_info(env, info[0], &type, &len, nullptr, &ab, &offset) != napi_ok || type != napi_uint8_array) {
      ThrowUsage(env, "inline data must be a Uint8Array");
    }
    // Asking for the ArrayBuffer materializes an on-heap typed array: the pointer is stable from here on.
    void* base = nullptr;
    size_t abLen = 0;
    if (napi_get_arraybuffer_info(env, ab, &base, &abLen) != napi_ok) ThrowUsage(env, "inline data: no ArrayBuffer");
    if (napi_create_reference(env, ab, 1, &p->inlineRef) != napi_ok) ThrowUsage(env, "inline data: cannot reference");
    if (len > 0) {
      p->sges[0].addr = reinterpret_cast<uintptr_t>(static_cast<uint8_t*>(base) + offset);
      p->sges[0].length = static_cast<uint32_t>(len);
      p->sges[0].lkey = 0;
      p->wr.num_sge = 1;
    }
  }
  p->wr.sg_list = p->sges;
  p->wr.next = nullptr;
  p->qp = this;
  uint32_t index;
  if (!data->preparedFree.empty()) {
    index = data->preparedFree.back();
    data->preparedFree.pop_back();
    p->gen = data->prepared[index]->gen + 1;
    data->prepared[index] = std::move(p);
  } else {
    index = static_cast<uint32_t>(data->prepared.size());
    p->gen = 1;
    data->prepared.push_back(std::move(p));
  }
  data->preparedLive++;
  double handle = static_cast<double>(data->prepared[index]->gen) * kMaxPrepared + index;
  return Napi::Number::New(env, handle);
}

static void FreePrepared(AddonData* data, uint32_t index, bool teardown) {
  PreparedSend& p = *data->prepared[index];
  if (p.inlineRef != nullptr && !teardown) napi_delete_reference(data->env, p.inlineRef);
  p.inlineRef = nullptr;
  p.qp = nullptr;
  p.wr = ibv_send_wr{};
  data->preparedFree.push_back(index);
  data->preparedLive--;
}

void Qp::ReleasePrepared(bool teardown) {
  AddonData* data = data_;
  if (data == nullptr || data->preparedLive == 0) return;
  for (uint32_t i = 0; i < data->prepared.size(); i++) {
    if (data->prepared[i]->qp == this) FreePrepared(data, i, teardown);
  }
}

// The slot of a live handle, or nullptr.
static PreparedSend* LookupPrepared(AddonData* data, double handle, uint32_t* indexOut) {
  if (!(handle >= 0) || handle > 9007199254740991.0) return nullptr;
  uint64_t h = static_cast<uint64_t>(handle);
  if (static_cast<double>(h) != handle) return nullptr;
  uint32_t index = static_cast<uint32_t>(h & (kMaxPrepared - 1));
  uint64_t gen = h >> kPreparedIndexBits;
  if (index >= data->prepared.size()) return nullptr;
  PreparedSend* p = data->prepared[index].get();
  if (p->qp == nullptr || p->gen != gen || p->qp->qp() == nullptr) return nullptr;
  if (indexOut != nullptr) *indexOut = index;
  return p;
}

static bool InlineDetached(napi_env env, const PreparedSend* p) {
  if (p->inlineRef == nullptr) return false;
  napi_value ab;
  bool detached = false;
  if (napi_get_reference_value(env, p->inlineRef, &ab) != napi_ok || ab == nullptr) return true;
  if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok) return true;
  return detached;
}

static napi_value Int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// The arguments of a plain Node-API call (unset ones stay undefined) and the addon data that
// comes with it; returns how many arguments the caller passed.
template <size_t N>
static size_t CallArgs(napi_env env, napi_callback_info cb, napi_value (&argv)[N], AddonData** data) {
  size_t argc = N;
  void* vdata = nullptr;
  napi_get_cb_info(env, cb, &argc, argv, nullptr, &vdata);
  *data = static_cast<AddonData*>(vdata);
  return argc;
}

// postPrepared(handle): posts a prepared WR. Plain Node-API (no wrapper object to unwrap, the
// addon data comes with the call). Returns 0, the errno of ibv_post_send, -1 for a handle that is
// not live (never issued, released, or its QP destroyed), -2 when the inline data was detached.
static napi_value PostPrepared(napi_env env, napi_callback_info cb) {
  napi_value argv[1];
  AddonData* data = nullptr;
  size_t argc = CallArgs(env, cb, argv, &data);
  double handle = -1;
  if (argc < 1 || napi_get_value_double(env, argv[0], &handle) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "postPrepared(handle): handle must be a number");
    return nullptr;
  }
  PreparedSend* p = LookupPrepared(data, handle, nullptr);
  if (p == nullptr) return Int(env, kPreparedBadHandle);
  if (InlineDetached(env, p)) return Int(env, kPreparedInlineDetached);
  ibv_send_wr* bad = nullptr;
  return Int(env, ibv_post_send(p->qp->qp(), &p->wr, &bad));
}

// postPreparedList(handles: Float64Array, count): posts handles[0..count), which must all belong to
// one QP, chained in one ibv_post_send per 64 (one doorbell, one system call on rxe). Every handle
// is checked before anything is posted. Returns 0 when all were posted, else [code, posted, index]:
// code as postPrepared's, `posted` how many (the first ones) were posted, `index` the entry at fault.
static napi_value ListFailure(napi_env env, int code, uint32_t posted, uint32_t index) {
  napi_value arr;
  napi_create_array_with_length(env, 3, &arr);
  napi_set_element(env, arr, 0, Int(env, code));
  napi_set_element(env, arr, 1, Int(env, static_cast<int>(posted)));
  napi_set_element(env, arr, 2, Int(env, static_cast<int>(index)));
  return arr;
}

static napi_value PostPreparedList(napi_env env, napi_callback_info cb) {
  napi_value argv[2];
  AddonData* data = nullptr;
  size_t argc = CallArgs(env, cb, argv, &data);
  napi_typedarray_type type;
  size_t len = 0;
  void* raw = nullptr;
  uint32_t count = 0;
  bool isTa = false;
  if (argc < 2 || napi_is_typedarray(env, argv[0], &isTa) != napi_ok || !isTa ||
      napi_get_typedarray_info(env, argv[0], &type, &len, &raw, nullptr, nullptr) != napi_ok || type != napi_float64_array ||
      napi_get_value_uint32(env, argv[1], &count) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARGUMENT", "postPreparedList(handles: Float64Array, count)");
    return nullptr;
  }
  if (count > len) count = static_cast<uint32_t>(len);
  if (count == 0) return Int(env, 0);
  const double* handles = static_cast<const double*>(raw);
  Qp* qp = nullptr;
  for (uint32_t i = 0; i < count; i++) {
    PreparedSend* p = LookupPrepared(data, handles[i], nullptr);
    if (p == nullptr) return ListFailure(env, kPreparedBadHandle, 0, i);
    if (qp != nullptr && p->qp != qp) return ListFailure(env, kPreparedMixedQps, 0, i);
    if (InlineDetached(env, p)) return ListFailure(env, kPreparedInlineDetached, 0, i);
    qp = p->qp;
  }
  constexpr uint32_t kChain = 64;
  ibv_send_wr chain[kChain];
  uint32_t done = 0;
  while (done < count) {
    uint32_t n = std::min(kChain, count - done);
    for (uint32_t i = 0; i < n; i++) {
      chain[i] = LookupPrepared(data, handles[done + i], nullptr)->wr;
      chain[i].next = i + 1 < n ? &chain[i + 1] : nullptr;
    }
    ibv_send_wr* bad = nullptr;
    int rc = ibv_post_send(qp->qp(), chain, &bad);
    if (rc != 0) {
      uint32_t at = done + (bad != nullptr ? static_cast<uint32_t>(bad - chain) : 0);
      return ListFailure(env, rc, at, at);
    }
    done += n;
  }
  return Int(env, 0);
}

// releasePrepared(handle): frees a prepared WR (and its reference to the inline data). Returns
// true if the handle was live.
static napi_value ReleasePreparedFn(napi_env env, napi_callback_info cb) {
  napi_value argv[1];
  AddonData* data = nullptr;
  size_t argc = CallArgs(env, cb, argv, &data);
  double handle = -1;
  if (argc >= 1) napi_get_value_double(env, argv[0], &handle);
  uint32_t index = 0;
  PreparedSend* p = LookupPrepared(data, handle, &index);
  if (p != nullptr) FreePrepared(data, index, false);
  napi_value out;
  napi_get_boolean(env, p != nullptr, &out);
  return out;
}

void InitPrepared(Napi::Env env, Napi::Object exports, AddonData* data) {
  struct Fn { const char* name; napi_callback cb; };
  const Fn fns[] = {{"postPrepared", PostPrepared}, {"postPreparedList", PostPreparedList}, {"releasePrepared", ReleasePreparedFn}};
  for (const Fn& f : fns) {
    napi_value fn;
    NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, data, &fn));
    exports.Set(f.name, Napi::Value(env, fn));
  }
}

// postRecv(): one receive WR from the shared descriptor. Returns 0 or the errno (ENOMEM: full).
Napi::Value Qp::PostRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (qp_ == nullptr) ThrowUsage(env, "queue pair is destroyed");
  const uint8_t* d = data_->desc;
  ibv_sge sges[desc::kMaxSge];
  ibv_recv_wr wr{};
  double wrId;
  std::memcpy(&wrId, d + desc::kWrId, 8);
  wr.wr_id = (static_cast<uint64_t>(wrId) & kWrIdMask) | (uint64_t(0xff) << kTagShift);
  wr.sg_list = sges;
  wr.num_sge = ReadSges(d, sges, desc::kMaxSge);
  ibv_recv_wr* bad = nullptr;
  int rc = ibv_post_recv(qp_, &wr, &bad);
  return Napi::Number::New(env, rc);
}

}  // namespace rv
