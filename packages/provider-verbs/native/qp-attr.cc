// qp-attr.cc - ibv_qp_attr as a JS object, the same names wherever the addon hands attributes out:
// Qp.query (queue-pair.cc) and CmChannel.initQpAttr (cm.cc).
#include "verbs.h"

namespace rv {

void SetQpAttrs(Napi::Object o, const ibv_qp_attr& a) {
  o.Set("accessFlags", a.qp_access_flags);
  o.Set("pkeyIndex", a.pkey_index);
  o.Set("portNum", a.port_num);
  o.Set("pathMtu", static_cast<uint32_t>(a.path_mtu));
  o.Set("destQpn", a.dest_qp_num);
  o.Set("rqPsn", a.rq_psn);
  o.Set("sqPsn", a.sq_psn);
  o.Set("maxDestRdAtomic", a.max_dest_rd_atomic);
  o.Set("minRnrTimer", a.min_rnr_timer);
  o.Set("timeout", a.timeout);
  o.Set("retryCnt", a.retry_cnt);
  o.Set("rnrRetry", a.rnr_retry);
  o.Set("maxRdAtomic", a.max_rd_atomic);
}

void SetGrhAttrs(Napi::Env env, Napi::Object o, const ibv_global_route& grh) {
  o.Set("dgid", Napi::Buffer<uint8_t>::Copy(env, grh.dgid.raw, 16));
  o.Set("sgidIndex", grh.sgid_index);
  o.Set("hopLimit", grh.hop_limit);
  o.Set("trafficClass", grh.traffic_class);
}

}  // namespace rv
