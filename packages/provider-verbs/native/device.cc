// device.cc - Device: opens an ibv_context, queries it (device, port, GID table) and watches its
// completion channel and async-event fd with uv_poll (no busy polling, no thread per CQ).
#include "verbs.h"
#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <mutex>
#include <vector>

namespace rv {

// Every open Device of every env (main thread and workers). Allocated once and never freed: a
// worker's env teardown (which closes its devices) can still be running while the process exits
// and runs static destructors.
static std::mutex& gDevicesMutex = *new std::mutex();
static std::set<Device*>& gDevices = *new std::set<Device*>();
static std::set<napi_env>& gTearingDown = *new std::set<napi_env>();

bool EnvTearingDown(napi_env env) {
  std::lock_guard<std::mutex> lock(gDevicesMutex);
  return gTearingDown.count(env) > 0;
}

void SetEnvTearingDown(napi_env env, bool on) {
  std::lock_guard<std::mutex> lock(gDevicesMutex);
  if (on) gTearingDown.insert(env);
  else gTearingDown.erase(env);
}

static void SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static const char* GidTypeName(uint32_t t) {
  switch (t) {
    case IBV_GID_TYPE_IB: return "ib";
    case IBV_GID_TYPE_ROCE_V1: return "roce-v1";
    case IBV_GID_TYPE_ROCE_V2: return "roce-v2";
    default: return "unknown";
  }
}

static const char* LinkLayerName(uint8_t l) {
  switch (l) {
    case IBV_LINK_LAYER_INFINIBAND: return "infiniband";
    case IBV_LINK_LAYER_ETHERNET: return "ethernet";
    default: return "unspecified";
  }
}

static const char* AtomicCapName(ibv_atomic_cap c) {
  switch (c) {
    case IBV_ATOMIC_NONE: return "none";
    case IBV_ATOMIC_HCA: return "hca";
    case IBV_ATOMIC_GLOB: return "global";
    default: return "unknown";
  }
}

Napi::Function Device::Define(Napi::Env env) {
  return DefineClass(env, "Device", {
    InstanceMethod<&Device::Close>("close"),
    InstanceMethod<&Device::Query>("query"),
    InstanceMethod<&Device::QueryPort>("queryPort"),
    InstanceMethod<&Device::GidTable>("gidTable"),
    InstanceMethod<&Device::Watch>("watch"),
    InstanceMethod<&Device::Stats>("stats"),
  });
}

// new Device(name)
Device::Device(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Device>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowUsage(env, "Device(name): name must be a string");
  name_ = info[0].As<Napi::String>().Utf8Value();
  RequireLibibverbs(env);
  int num = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (list == nullptr) ThrowVerbs(env, "ibv_get_device_list", errno ? errno : ENODEV);
  ibv_device* found = nullptr;
  for (int i = 0; i < num; i++) {
    if (name_ == ibv_get_device_name(list[i])) found = list[i];
  }
  if (found == nullptr) {
    ibv_free_device_list(list);
    ThrowVerbs(env, "ibv_open_device", ENODEV, "no RDMA device named '" + name_ + "'");
  }
  errno = 0;
  ctx_ = ibv_open_device(found);
  int err = errno;
  ibv_free_device_list(list);
  if (ctx_ == nullptr) ThrowVerbs(env, "ibv_open_device", err ? err : ENODEV, "device '" + name_ + "'");
  channel_ = ibv_create_comp_channel(ctx_);
  if (channel_ == nullptr) {
    err = errno;
    ibv_close_device(ctx_);
    ctx_ = nullptr;
    ThrowVerbs(env, "ibv_create_comp_channel", err);
  }
  SetNonBlocking(channel_->fd);
  SetNonBlocking(ctx_->async_fd);
  AddonData* data = Data(env);
  id_ = data->nextId++;
  std::lock_guard<std::mutex> lock(gDevicesMutex);
  gDevices.insert(this);
}

Device::~Device() {
  ForceClose(EnvTearingDown(env_));
  std::lock_guard<std::mutex> lock(gDevicesMutex);
  gDevices.erase(this);
}

void Device::CheckOpen(Napi::Env env) const {
  if (ctx_ == nullptr) ThrowUsage(env, "device '" + name_ + "' is closed");
}

uint32_t Device::AddCq(Cq* cq) {
  uint32_t id = nextChildId_++;
  cqs_[id] = cq;
  return id;
}
void Device::RemoveCq(uint32_t id) { cqs_.erase(id); }
uint32_t Device::AddQp(Qp* qp) {
  uint32_t id = nextChildId_++;
  qps_[id] = qp;
  return id;
}
void Device::RemoveQp(uint32_t id) { qps_.erase(id); }
Qp* Device::FindQp(uint32_t id) const {
  auto it = qps_.find(id);
  return it == qps_.end() ? nullptr : it->second;
}

static void ClosePollHandle(uv_poll_t*& h) {
  if (h == nullptr) return;
  uv_poll_stop(h);
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<uv_poll_t*>(x); });
  h = nullptr;
}

void Device::StopWatching() {
  if (compPoll_ != nullptr) compPoll_->data = nullptr;
  if (asyncPoll_ != nullptr) asyncPoll_->data = nullptr;
  ClosePollHandle(compPoll_);
  ClosePollHandle(asyncPoll_);
  onEvent_.Reset();
}

// Children first (QPs, SRQs, MRs, CQs, PDs), then the channel and the context.
void Device::ForceClose(bool teardown) {
  if (ctx_ == nullptr) return;
  std::vector<Qp*> qps;
  for (auto& kv : qps_) qps.push_back(kv.second);
  for (Qp* q : qps) teardown ? q->Abandon() : q->Release();
  for (Srq* x : std::vector<Srq*>(srqs.begin(), srqs.end())) teardown ? x->Abandon() : x->Release();
  for (Mr* m : std::vector<Mr*>(mrs.begin(), mrs.end())) teardown ? m->Abandon() : m->Release();
  std::vector<Cq*> cqs;
  for (auto& kv : cqs_) cqs.push_back(kv.second);
  for (Cq* c : cqs) teardown ? c->Abandon() : c->Release();
  for (Pd* p : std::vector<Pd*>(pds.begin(), pds.end())) teardown ? p->Abandon() : p->Release();
  if (teardown) {
    if (compPoll_ != nullptr) compPoll_->data = nullptr;
    if (asyncPoll_ != nullptr) asyncPoll_->data = nullptr;
    ClosePollHandle(compPoll_);
    ClosePollHandle(asyncPoll_);
    onEvent_.SuppressDestruct();
  } else {
    StopWatching();
  }
  if (channel_ != nullptr) ibv_destroy_comp_channel(channel_);
  channel_ = nullptr;
  ibv_close_device(ctx_);
  ctx_ = nullptr;
}

// close(): refuses while children are alive (the SPI's destroy order), then releases the device.
Napi::Value Device::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ctx_ == nullptr) return env.Undefined();
  if (Children() > 0) {
    ThrowVerbs(env, "ibv_close_device", EBUSY,
               "device '" + name_ + "' still has " + std::to_string(qps_.size()) + " QP(s), " + std::to_string(cqs_.size()) +
                   " CQ(s), " + std::to_string(mrs.size()) + " MR(s), " + std::to_string(srqs.size()) + " SRQ(s) and " +
                   std::to_string(pds.size()) + " PD(s); destroy them first");
  }
  StopWatching();
  if (ibv_destroy_comp_channel(channel_) != 0) ThrowVerbs(env, "ibv_destroy_comp_channel", errno);
  channel_ = nullptr;
  ibv_close_device(ctx_);
  ctx_ = nullptr;
  return env.Undefined();
}

Napi::Value Device::Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  ibv_device_attr a{};
  int rc = ibv_query_device(ctx_, &a);
  if (rc != 0) ThrowVerbs(env, "ibv_query_device", rc);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name_);
  o.Set("fwVer", a.fw_ver);
  o.Set("nodeGuid", Napi::BigInt::New(env, static_cast<uint64_t>(a.node_guid)));
  o.Set("vendorId", a.vendor_id);
  o.Set("vendorPartId", a.vendor_part_id);
  o.Set("maxMrSize", static_cast<double>(a.max_mr_size));
  o.Set("maxQp", a.max_qp);
  o.Set("maxQpWr", a.max_qp_wr);
  o.Set("maxSge", a.max_sge);
  o.Set("maxCq", a.max_cq);
  o.Set("maxCqe", a.max_cqe);
  o.Set("maxMr", a.max_mr);
  o.Set("maxPd", a.max_pd);
  o.Set("maxQpRdAtom", a.max_qp_rd_atom);
  o.Set("maxQpInitRdAtom", a.max_qp_init_rd_atom);
  o.Set("maxSrq", a.max_srq);
  o.Set("maxSrqWr", a.max_srq_wr);
  o.Set("maxSrqSge", a.max_srq_sge);
  o.Set("maxPkeys", a.max_pkeys);
  o.Set("atomicCap", AtomicCapName(a.atomic_cap));
  o.Set("physPortCnt", a.phys_port_cnt);
  return o;
}

Napi::Value Device::QueryPort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint32_t port = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 1;
  ibv_port_attr a{};
  int rc = ibv_query_port(ctx_, static_cast<uint8_t>(port), &a);
  if (rc != 0) ThrowVerbs(env, "ibv_query_port", rc, "port " + std::to_string(port));
  Napi::Object o = Napi::Object::New(env);
  o.Set("port", port);
  o.Set("state", ibv_port_state_str(a.state));
  o.Set("stateCode", static_cast<uint32_t>(a.state));
  o.Set("maxMtu", 128u << a.max_mtu);
  o.Set("activeMtu", 128u << a.active_mtu);
  o.Set("gidTblLen", a.gid_tbl_len);
  o.Set("pkeyTblLen", static_cast<uint32_t>(a.pkey_tbl_len));
  o.Set("linkLayer", LinkLayerName(a.link_layer));
  o.Set("maxMsgSz", a.max_msg_sz);
  return o;
}

// gidTable(): every valid GID entry of every port: { index, port, gid (16-byte Buffer), type, ifindex }.
Napi::Value Device::GidTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  ibv_device_attr da{};
  int rc = ibv_query_device(ctx_, &da);
  if (rc != 0) ThrowVerbs(env, "ibv_query_device", rc);
  size_t total = 0;
  for (uint8_t p = 1; p <= da.phys_port_cnt; p++) {
    ibv_port_attr pa{};
    if (ibv_query_port(ctx_, p, &pa) == 0) total += pa.gid_tbl_len;
  }
  std::vector<ibv_gid_entry> entries(total > 0 ? total : 1);
  ssize_t n = ibv_query_gid_table(ctx_, entries.data(), entries.size(), 0);
  if (n < 0) ThrowVerbs(env, "ibv_query_gid_table", static_cast<int>(-n));
  Napi::Array out = Napi::Array::New(env, static_cast<size_t>(n));
  for (ssize_t i = 0; i < n; i++) {
    const ibv_gid_entry& e = entries[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", e.gid_index);
    o.Set("port", e.port_num);
    o.Set("gid", Napi::Buffer<uint8_t>::Copy(env, e.gid.raw, 16));
    o.Set("type", GidTypeName(e.gid_type));
    o.Set("ifindex", e.ndev_ifindex);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// watch(onEvent): starts uv_poll on the completion channel and on the async-event fd.
// onEvent(name, qpId, port) gets async events (port state, QP fatal, …).
Napi::Value Device::Watch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  if (!info[0].IsFunction()) ThrowUsage(env, "watch(onEvent): onEvent must be a function");
  onEvent_ = Napi::Persistent(info[0].As<Napi::Function>());
  if (compPoll_ != nullptr) return env.Undefined();
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  compPoll_ = new uv_poll_t;
  asyncPoll_ = new uv_poll_t;
  uv_poll_init(loop, compPoll_, channel_->fd);
  uv_poll_init(loop, asyncPoll_, ctx_->async_fd);
  compPoll_->data = this;
  asyncPoll_->data = this;
  uv_poll_start(compPoll_, UV_READABLE, OnCompletionReadable);
  uv_poll_start(asyncPoll_, UV_READABLE, OnAsyncReadable);
  // An open device keeps the process alive through its completion channel (like an open socket,
  // so awaited work requests complete); async events alone do not.
  uv_unref(reinterpret_cast<uv_handle_t*>(asyncPoll_));
  return env.Undefined();
}

Napi::Value Device::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("qps", static_cast<double>(qps_.size()));
  o.Set("cqs", static_cast<double>(cqs_.size()));
  o.Set("mrs", static_cast<double>(mrs.size()));
  o.Set("pds", static_cast<double>(pds.size()));
  o.Set("srqs", static_cast<double>(srqs.size()));
  return o;
}

void Device::OnCompletionReadable(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<Device*>(handle->data);
  if (self == nullptr || status < 0) return;
  self->DrainCompletionChannel();
}

void Device::OnAsyncReadable(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<Device*>(handle->data);
  if (self == nullptr || status < 0) return;
  self->DrainAsyncEvents();
}

// Reads every pending CQ event, acks it, re-arms the CQ, then lets JS poll each CQ once.
void Device::DrainCompletionChannel() {
  std::vector<uint32_t> ready;
  for (;;) {
    ibv_cq* cq = nullptr;
    void* cqContext = nullptr;
    if (ibv_get_cq_event(channel_, &cq, &cqContext) != 0) break;
    ibv_ack_cq_events(cq, 1);
    uint32_t id = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(cqContext));
    if (std::find(ready.begin(), ready.end(), id) == ready.end()) ready.push_back(id);
  }
  if (ready.empty()) return;
  for (uint32_t id : ready) {
    auto it = cqs_.find(id);
    if (it != cqs_.end()) ibv_req_notify_cq(it->second->cq(), 0);
  }
  Napi::HandleScope scope(env_);
  for (uint32_t id : ready) {
    if (ctx_ == nullptr) return;
    auto it = cqs_.find(id);
    if (it != cqs_.end()) it->second->Notify();
  }
}

static const char* QpEventKind(ibv_event_type t) {
  switch (t) {
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR: return "fatal";
    case IBV_EVENT_PATH_MIG: return "path-migrated";
    case IBV_EVENT_QP_LAST_WQE_REACHED: return "last-wqe-reached";
    default: return nullptr;
  }
}

void Device::DrainAsyncEvents() {
  struct Ev { std::string name; const char* qpKind; uint32_t qpId; uint32_t port; };
  std::vector<Ev> events;
  for (;;) {
    ibv_async_event ev{};
    if (ibv_get_async_event(ctx_, &ev) != 0) break;
    Ev e{ibv_event_type_str(ev.event_type), nullptr, 0, 0};
    switch (ev.event_type) {
      case IBV_EVENT_QP_FATAL:
      case IBV_EVENT_QP_REQ_ERR:
      case IBV_EVENT_QP_ACCESS_ERR:
      case IBV_EVENT_COMM_EST:
      case IBV_EVENT_SQ_DRAINED:
      case IBV_EVENT_PATH_MIG:
      case IBV_EVENT_PATH_MIG_ERR:
      case IBV_EVENT_QP_LAST_WQE_REACHED:
        e.qpKind = QpEventKind(ev.event_type);
        e.qpId = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(ev.element.qp->qp_context));
        break;
      case IBV_EVENT_PORT_ACTIVE:
      case IBV_EVENT_PORT_ERR:
      case IBV_EVENT_LID_CHANGE:
      case IBV_EVENT_PKEY_CHANGE:
      case IBV_EVENT_GID_CHANGE:
      case IBV_EVENT_SM_CHANGE:
      case IBV_EVENT_CLIENT_REREGISTER:
        e.port = static_cast<uint32_t>(ev.element.port_num);
        break;
      default:
        break;
    }
    ibv_ack_async_event(&ev);
    events.push_back(e);
  }
  if (events.empty() || onEvent_.IsEmpty()) return;
  Napi::HandleScope scope(env_);
  for (const Ev& e : events) {
    if (ctx_ == nullptr || onEvent_.IsEmpty()) return;
    try {
      onEvent_.MakeCallback(env_.Global(), {Napi::String::New(env_, e.name),
                                            e.qpKind ? Napi::String::New(env_, e.qpKind) : env_.Null(),
                                            Napi::Number::New(env_, e.qpId), Napi::Number::New(env_, e.port)});
    } catch (const Napi::Error& err) {
      napi_fatal_exception(env_, err.Value());
    }
  }
}

// At env teardown (process exit, worker end): close every device this env opened, children first.
void CloseDevicesOfEnv(napi_env env) {
  SetEnvTearingDown(env, true);
  std::vector<Device*> mine;
  {
    std::lock_guard<std::mutex> lock(gDevicesMutex);
    for (Device* d : gDevices) mine.push_back(d);
  }
  for (Device* d : mine) {
    if (static_cast<napi_env>(d->Env()) == env) d->ForceClose(true);
  }
}

}  // namespace rv
