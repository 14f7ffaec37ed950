// roce_receive_run.h - checks and places a run of received RoCEv2 packets of one message (roce_receive_run.c).
#ifndef ROCE_RECEIVE_RUN_H
#define ROCE_RECEIVE_RUN_H
#include <node_api.h>
napi_value roce_receive_run(napi_env env, napi_callback_info info);
#endif
