{
  "targets": [
    {
      "target_name": "rdma_verbs",
      "sources": [
        "native/addon.cc",
        "native/verbs-error.cc",
        "native/device.cc",
        "native/resources.cc",
        "native/queue-pair.cc",
        "native/libibverbs.cc",
        "native/cm.cc",
        "native/librdmacm.cc",
        "native/dynamic-library.cc",
        "native/qp-attr.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden", "-O2", "-Wall", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-ldl"]
    }
  ]
}
