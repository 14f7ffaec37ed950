{
  "targets": [
    {
      "target_name": "roce_sockopt",
      "conditions": [
        ["OS=='linux'", {
          "sources": ["roce_sockopt.c", "crc32_fold.c", "roce_run.c", "roce_receive_run.c"],
          "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
        }]
      ]
    }
  ]
}
