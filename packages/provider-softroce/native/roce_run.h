// roce_run.h - run framing + GSO send of equal-sized RoCEv2 packets (roce_run.c).
#ifndef ROCE_RUN_H
#define ROCE_RUN_H
#include <node_api.h>
napi_value roce_frame_run(napi_env env, napi_callback_info info);
napi_value roce_send_run(napi_env env, napi_callback_info info);
#endif
