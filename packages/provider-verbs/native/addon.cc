// addon.cc - module entry of rdma_verbs: device listing, the shared descriptor/record buffers,
// the error factory, and the env cleanup hook that closes every device (children first) at exit.
#include "verbs.h"
#include "cm.h"
#include <cerrno>
#include <dlfcn.h>
#include <mutex>

namespace rv {

void CloseDevicesOfEnv(napi_env env);

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

// listDevices() -> [{ name, guid, transport }]; throws ERR_VERBS when the kernel has no verbs support.
static Napi::Value ListDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLibibverbs(env);
  int num = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (list == nullptr) ThrowVerbs(env, "ibv_get_device_list", errno ? errno : ENOSYS);
  Napi::Array out = Napi::Array::New(env, num);
  for (int i = 0; i < num; i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", ibv_get_device_name(list[i]));
    o.Set("guid", Napi::BigInt::New(env, static_cast<uint64_t>(ibv_get_device_guid(list[i]))));
    o.Set("nodeType", ibv_node_type_str(list[i]->node_type));
    out.Set(static_cast<uint32_t>(i), o);
  }
  ibv_free_device_list(list);
  return out;
}

// setBuffers(descriptor: ArrayBuffer, records: ArrayBuffer, errorFactory)
static Napi::Value SetBuffers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer() || !info[1].IsArrayBuffer() || !info[2].IsFunction()) {
    ThrowUsage(env, "setBuffers(descriptor, records, errorFactory)");
  }
  Napi::ArrayBuffer d = info[0].As<Napi::ArrayBuffer>();
  Napi::ArrayBuffer w = info[1].As<Napi::ArrayBuffer>();
  if (d.ByteLength() < desc::kBytes || w.ByteLength() < wcrec::kMax * wcrec::kWords * 4) ThrowUsage(env, "buffers too small");
  AddonData* data = Data(env);
  data->descRef = Napi::Persistent(d);
  data->wcRef = Napi::Persistent(w);
  data->desc = static_cast<uint8_t*>(d.Data());
  data->wc = static_cast<uint32_t*>(w.Data());
  data->errorFactory = Napi::Persistent(info[2].As<Napi::Function>());
  return env.Undefined();
}

// Keeps this library mapped for the life of the process. Node unloads (dlclose) an addon when the
// last env that loaded it is destroyed, e.g. a worker thread that was the only user. But the
// worker's teardown still runs code of ours after that: libuv invokes the close callbacks of the
// uv_poll handles our cleanup hook closed when the worker's loop is drained one last time, after
// the env (and the library) are gone, which jumped into unmapped memory (SIGSEGV). The addon also
// holds process-wide state (the device registry) that must outlive every env.
static void PinLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info self{};
    if (dladdr(reinterpret_cast<void*>(&PinLibrary), &self) != 0 && self.dli_fname != nullptr) {
      // RTLD_NOLOAD: only mark the loaded copy; the handle is kept on purpose (never dlclosed).
      dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    }
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinLibrary();
  auto* data = new AddonData();
  data->env = env;
  env.SetInstanceData(data);
  data->deviceCtor = Napi::Persistent(Device::Define(env));
  data->pdCtor = Napi::Persistent(Pd::Define(env));
  data->mrCtor = Napi::Persistent(Mr::Define(env));
  data->cqCtor = Napi::Persistent(Cq::Define(env));
  data->srqCtor = Napi::Persistent(Srq::Define(env));
  data->qpCtor = Napi::Persistent(Qp::Define(env));
  exports.Set("Device", data->deviceCtor.Value());
  exports.Set("Pd", data->pdCtor.Value());
  exports.Set("Mr", data->mrCtor.Value());
  exports.Set("Cq", data->cqCtor.Value());
  exports.Set("Srq", data->srqCtor.Value());
  exports.Set("Qp", data->qpCtor.Value());
  exports.Set("listDevices", Napi::Function::New(env, ListDevices, "listDevices"));
  exports.Set("libibverbs", Napi::Function::New(env, LibibverbsStatus, "libibverbs"));
  exports.Set("setBuffers", Napi::Function::New(env, SetBuffers, "setBuffers"));
  InitPrepared(env, exports, data);
  InitCm(env, exports);
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("descriptorBytes", static_cast<double>(desc::kBytes));
  layout.Set("maxSge", desc::kMaxSge);
  layout.Set("recordWords", static_cast<double>(wcrec::kWords));
  layout.Set("maxRecords", static_cast<double>(wcrec::kMax));
  exports.Set("layout", layout);
  napi_add_env_cleanup_hook(env, [](void* arg) { CloseDevicesOfEnv(static_cast<napi_env>(arg)); }, static_cast<napi_env>(env));
  return exports;
}

}  // namespace rv

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return rv::Init(env, exports); }

NODE_API_MODULE(rdma_verbs, InitAddon)
