// verbs-error.cc - errors thrown by the addon: verbs failures carry errno, its name and words.
#include "verbs.h"
#include <cerrno>
#include <cstring>

namespace rv {

std::string ErrnoName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* n = strerrorname_np(err);
  if (n != nullptr) return n;
#endif
  return "E" + std::to_string(err);
}

void ThrowVerbs(Napi::Env env, const char* verb, int err, const std::string& what) {
  AddonData* data = Data(env);
  std::string message = std::string(verb) + " failed: " + std::strerror(err) + " (" + ErrnoName(err) + ")";
  if (!what.empty()) message += "; " + what;
  if (!data->errorFactory.IsEmpty()) {
    Napi::Value e = data->errorFactory.Call({Napi::String::New(env, verb), Napi::Number::New(env, err),
                                             Napi::String::New(env, ErrnoName(err)), Napi::String::New(env, message)});
    throw Napi::Error(env, e);
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_VERBS"));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("verb", Napi::String::New(env, verb));
  throw e;
}

void ThrowUsage(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

bool GetU32(const Napi::Object& o, const char* key, uint32_t* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return false;
  if (!v.IsNumber()) ThrowUsage(o.Env(), std::string("attribute '") + key + "' must be a number");
  *out = v.As<Napi::Number>().Uint32Value();
  return true;
}

}  // namespace rv
