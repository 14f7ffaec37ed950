// cm.cc - CmChannel: rdma_cm (librdmacm) for provider-verbs. The event channel's fd is
// non-blocking and watched by uv_poll (as the device's completion channel is); each event is
// copied, acknowledged, then handed to JS as onEvent(name, status, handle, listenHandle,
// privateData, param). A connection request's new rdma_cm_id gets its own handle.
#include "cm.h"
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>

namespace rv {

namespace {

[[noreturn]] void ThrowCm(Napi::Env env, const char* call, int err, const std::string& what = "") {
  ThrowVerbs(env, call, err, what);
}

void* HandleContext(uint32_t h) { return reinterpret_cast<void*>(static_cast<uintptr_t>(h)); }
uint32_t ContextHandle(void* c) { return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(c)); }

// "10.0.0.1" / "fd00::1" and a port -> sockaddr_storage (throws on a bad address).
socklen_t ParseAddress(Napi::Env env, const std::string& host, uint32_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    return sizeof(sockaddr_in);
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    return sizeof(sockaddr_in6);
  }
  ThrowUsage(env, "not an IPv4 or IPv6 address: " + host);
}

Napi::Object AddressObject(Napi::Env env, const sockaddr* sa) {
  Napi::Object o = Napi::Object::New(env);
  char text[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    auto* v4 = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    auto* v6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
  }
  o.Set("address", text);
  o.Set("port", port);
  return o;
}

// Private data from JS (Buffer/TypedArray or undefined) -> bytes, at most `max`.
std::string PrivateData(Napi::Env env, const Napi::Value& v, size_t max) {
  if (v.IsUndefined() || v.IsNull()) return std::string();
  if (!v.IsTypedArray()) ThrowUsage(env, "privateData must be a Uint8Array");
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  if (t.ByteLength() > max) ThrowUsage(env, "privateData is at most " + std::to_string(max) + " bytes");
  return std::string(static_cast<const char*>(t.ArrayBuffer().Data()) + t.ByteOffset(), t.ByteLength());
}

// conn params from JS: { qpNum, privateData, responderResources, initiatorDepth, retryCount, rnrRetryCount }
void ConnParam(Napi::Env env, const Napi::Value& v, rdma_conn_param* p, std::string* data, size_t maxData) {
  if (!v.IsObject()) ThrowUsage(env, "connection parameters must be an object");
  Napi::Object o = v.As<Napi::Object>();
  std::memset(p, 0, sizeof *p);
  *data = PrivateData(env, o.Get("privateData"), maxData);
  uint32_t x = 0;
  if (!GetU32(o, "qpNum", &x)) ThrowUsage(env, "qpNum is required");
  p->qp_num = x;
  p->responder_resources = GetU32(o, "responderResources", &x) ? static_cast<uint8_t>(x) : RDMA_MAX_RESP_RES;
  p->initiator_depth = GetU32(o, "initiatorDepth", &x) ? static_cast<uint8_t>(x) : RDMA_MAX_INIT_DEPTH;
  p->retry_count = GetU32(o, "retryCount", &x) ? static_cast<uint8_t>(x) : 7;
  p->rnr_retry_count = GetU32(o, "rnrRetryCount", &x) ? static_cast<uint8_t>(x) : 7;
  p->private_data = data->empty() ? nullptr : data->data();
  p->private_data_len = static_cast<uint8_t>(data->size());
}

}  // namespace

Napi::Function CmChannel::Define(Napi::Env env) {
  return DefineClass(env, "CmChannel", {
    InstanceMethod<&CmChannel::CreateId>("createId"),
    InstanceMethod<&CmChannel::DestroyId>("destroyId"),
    InstanceMethod<&CmChannel::Bind>("bind"),
    InstanceMethod<&CmChannel::Listen>("listen"),
    InstanceMethod<&CmChannel::ResolveAddr>("resolveAddr"),
    InstanceMethod<&CmChannel::ResolveRoute>("resolveRoute"),
    InstanceMethod<&CmChannel::InitQpAttr>("initQpAttr"),
    InstanceMethod<&CmChannel::Connect>("connect"),
    InstanceMethod<&CmChannel::Accept>("accept"),
    InstanceMethod<&CmChannel::Reject>("reject"),
    InstanceMethod<&CmChannel::Establish>("establish"),
    InstanceMethod<&CmChannel::Disconnect>("disconnect"),
    InstanceMethod<&CmChannel::Info>("info"),
    InstanceMethod<&CmChannel::Close>("close"),
  });
}

// new CmChannel(onEvent): opens librdmacm (ERR_LIBRDMACM_MISSING), an event channel, and watches it.
CmChannel::CmChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CmChannel>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) ThrowUsage(env, "CmChannel(onEvent)");
  RequireLibrdmacm(env);
  channel_ = rdma_create_event_channel();
  if (channel_ == nullptr) {
    int err = errno ? errno : ENODEV;
    ThrowCm(env, "rdma_create_event_channel", err, "is the rdma_ucm kernel module loaded (/dev/infiniband/rdma_cm)?");
  }
  int flags = fcntl(channel_->fd, F_GETFL);
  fcntl(channel_->fd, F_SETFL, flags | O_NONBLOCK);
  onEvent_ = Napi::Persistent(info[0].As<Napi::Function>());
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  uv_poll_init(loop, poll_, channel_->fd);
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, OnReadable);
}

CmChannel::~CmChannel() { Shutdown(); }

// Destroys every id, stops watching, destroys the channel (no Node-API call: also the destructor's path).
void CmChannel::Shutdown() {
  if (channel_ == nullptr) return;
  for (auto& kv : ids_) rdma_destroy_id(kv.second);
  ids_.clear();
  if (poll_ != nullptr) {
    poll_->data = nullptr;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* x) { delete reinterpret_cast<uv_poll_t*>(x); });
    poll_ = nullptr;
  }
  rdma_destroy_event_channel(channel_);
  channel_ = nullptr;
}

Napi::Value CmChannel::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  onEvent_.Reset();
  return info.Env().Undefined();
}

rdma_cm_id* CmChannel::IdOf(Napi::Env env, const Napi::Value& handle) const {
  if (channel_ == nullptr) ThrowUsage(env, "the connection manager is closed");
  if (!handle.IsNumber()) ThrowUsage(env, "an rdma_cm_id handle must be a number");
  auto it = ids_.find(handle.As<Napi::Number>().Uint32Value());
  if (it == ids_.end()) ThrowUsage(env, "unknown or destroyed rdma_cm_id handle");
  return it->second;
}

Napi::Value CmChannel::CreateId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (channel_ == nullptr) ThrowUsage(env, "the connection manager is closed");
  uint32_t h = nextHandle_++;
  rdma_cm_id* id = nullptr;
  if (rdma_create_id(channel_, &id, HandleContext(h), RDMA_PS_TCP) != 0) ThrowCm(env, "rdma_create_id", errno);
  ids_[h] = id;
  return Napi::Number::New(env, h);
}

Napi::Value CmChannel::DestroyId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (channel_ == nullptr || !info[0].IsNumber()) return env.Undefined();
  auto it = ids_.find(info[0].As<Napi::Number>().Uint32Value());
  if (it == ids_.end()) return env.Undefined();
  rdma_cm_id* id = it->second;
  ids_.erase(it);
  rdma_destroy_id(id);
  return env.Undefined();
}

// bind(handle, address, port) -> { address, port } (port 0: rdma_cm picks one)
Napi::Value CmChannel::Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  sockaddr_storage sa;
  ParseAddress(env, info[1].ToString().Utf8Value(), info[2].ToNumber().Uint32Value(), &sa);
  if (rdma_bind_addr(id, reinterpret_cast<sockaddr*>(&sa)) != 0) {
    int err = errno;
    ThrowCm(env, "rdma_bind_addr", err, "address " + info[1].ToString().Utf8Value() + " port " + std::to_string(info[2].ToNumber().Uint32Value()));
  }
  return AddressObject(env, rdma_get_local_addr(id));
}

Napi::Value CmChannel::Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  if (rdma_listen(id, info[1].ToNumber().Int32Value()) != 0) ThrowCm(env, "rdma_listen", errno);
  return env.Undefined();
}

// resolveAddr(handle, source address | null, destination address, port, timeoutMs)
Napi::Value CmChannel::ResolveAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  sockaddr_storage src, dst;
  bool haveSrc = info[1].IsString();
  if (haveSrc) ParseAddress(env, info[1].As<Napi::String>().Utf8Value(), 0, &src);
  ParseAddress(env, info[2].ToString().Utf8Value(), info[3].ToNumber().Uint32Value(), &dst);
  if (rdma_resolve_addr(id, haveSrc ? reinterpret_cast<sockaddr*>(&src) : nullptr, reinterpret_cast<sockaddr*>(&dst),
                        info[4].ToNumber().Int32Value()) != 0) {
    ThrowCm(env, "rdma_resolve_addr", errno, "to " + info[2].ToString().Utf8Value());
  }
  return env.Undefined();
}

Napi::Value CmChannel::ResolveRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  if (rdma_resolve_route(id, info[1].ToNumber().Int32Value()) != 0) ThrowCm(env, "rdma_resolve_route", errno);
  return env.Undefined();
}

// initQpAttr(handle, state) -> the attributes rdma_cm gives for moving a QP to `state` (1 INIT,
// 2 RTR, 3 RTS), as numbers; dgid as 16 bytes; `mask` is ibv_qp_attr_mask.
Napi::Value CmChannel::InitQpAttr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  ibv_qp_attr a{};
  a.qp_state = static_cast<ibv_qp_state>(info[1].ToNumber().Uint32Value());
  int mask = 0;
  if (rdma_init_qp_attr(id, &a, &mask) != 0) ThrowCm(env, "rdma_init_qp_attr", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("mask", mask);
  SetQpAttrs(o, a);
  SetGrhAttrs(env, o, a.ah_attr.grh);
  return o;
}

// connect(handle, { qpNum, privateData (<= 56 bytes), responderResources, initiatorDepth, retryCount, rnrRetryCount })
Napi::Value CmChannel::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  rdma_conn_param p;
  std::string data;
  ConnParam(env, info[1], &p, &data, 56);
  if (rdma_connect(id, &p) != 0) ThrowCm(env, "rdma_connect", errno);
  return env.Undefined();
}

// accept(handle, { qpNum, privateData (<= 196 bytes), responderResources, initiatorDepth })
Napi::Value CmChannel::Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  rdma_conn_param p;
  std::string data;
  ConnParam(env, info[1], &p, &data, 196);
  if (rdma_accept(id, &p) != 0) ThrowCm(env, "rdma_accept", errno);
  return env.Undefined();
}

// reject(handle, privateData?) (<= 148 bytes: the REJ's private data)
Napi::Value CmChannel::Reject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  std::string data = PrivateData(env, info[1], 148);
  if (rdma_reject(id, data.empty() ? nullptr : data.data(), static_cast<uint8_t>(data.size())) != 0) ThrowCm(env, "rdma_reject", errno);
  return env.Undefined();
}

Napi::Value CmChannel::Establish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  if (rdma_establish(id) != 0) ThrowCm(env, "rdma_establish", errno);
  return env.Undefined();
}

// disconnect(handle) -> 0, or the errno (EINVAL: not connected, nothing to do)
Napi::Value CmChannel::Disconnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  int rc = rdma_disconnect(id);
  return Napi::Number::New(env, rc == 0 ? 0 : errno);
}

// info(handle) -> { device, portNum, local: { address, port }, remote: { address, port } }
Napi::Value CmChannel::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = IdOf(env, info[0]);
  Napi::Object o = Napi::Object::New(env);
  if (id->verbs != nullptr && id->verbs->device != nullptr) o.Set("device", ibv_get_device_name(id->verbs->device));
  o.Set("portNum", id->port_num);
  o.Set("local", AddressObject(env, rdma_get_local_addr(id)));
  o.Set("remote", AddressObject(env, rdma_get_peer_addr(id)));
  return o;
}

void CmChannel::OnReadable(uv_poll_t* handle, int status, int) {
  auto* self = static_cast<CmChannel*>(handle->data);
  if (self == nullptr || status < 0) return;
  self->DrainEvents();
}

void CmChannel::DrainEvents() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  while (channel_ != nullptr) {
    Napi::HandleScope each(env);
    rdma_cm_event* e = nullptr;
    if (rdma_get_cm_event(channel_, &e) != 0) break;  // EAGAIN: drained
    uint32_t handle = 0, listenHandle = 0;
    if (e->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
      listenHandle = ContextHandle(e->listen_id->context);
      handle = nextHandle_++;
      e->id->context = HandleContext(handle);
      ids_[handle] = e->id;
    } else {
      handle = ContextHandle(e->id->context);
    }
    Napi::String name = Napi::String::New(env, rdma_event_str(e->event));
    Napi::Value data = env.Null();
    Napi::Object param = Napi::Object::New(env);
    if (e->param.conn.private_data != nullptr && e->param.conn.private_data_len > 0 &&
        e->event != RDMA_CM_EVENT_ADDR_RESOLVED && e->event != RDMA_CM_EVENT_ROUTE_RESOLVED) {
      data = Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(e->param.conn.private_data), e->param.conn.private_data_len);
    }
    param.Set("responderResources", e->param.conn.responder_resources);
    param.Set("initiatorDepth", e->param.conn.initiator_depth);
    param.Set("qpNum", e->param.conn.qp_num);
    param.Set("retryCount", e->param.conn.retry_count);
    param.Set("rnrRetryCount", e->param.conn.rnr_retry_count);
    int status = e->status;
    // Acknowledged before JS runs: rdma_destroy_id (which JS may call) waits for every event of its id.
    rdma_ack_cm_event(e);
    if (onEvent_.IsEmpty()) continue;
    try {
      onEvent_.MakeCallback(Value(), {name, Napi::Number::New(env, status), Napi::Number::New(env, handle),
                                      Napi::Number::New(env, listenHandle), data, param});
    } catch (const Napi::Error& err) {
      napi_fatal_exception(env, err.Value());  // the handler threw: an uncaught exception, as from any callback
      return;
    }
  }
}

void InitCm(Napi::Env env, Napi::Object exports) {
  exports.Set("CmChannel", CmChannel::Define(env));
  exports.Set("librdmacm", Napi::Function::New(env, LibrdmacmStatus, "librdmacm"));
}

}  // namespace rv
