# vsx-kv (demos/vsx_kv.c, docs/vsx-kv.md): the line protocol with one
# replica (no root), and the crash test: three replicas, two killed with
# kill -9 and restarted under a stream of writes, then identical content
# and every answered write present (kv.sh).  The crash test runs on
# 127.0.0.1 with UDP unicast (no root), and in test hosts over UDP
# multicast and over AF_XDP (root; skipped without it).
vsx_program_test(kv_proto kv_proto.sh)
vsx_program_test(kv_crash_local kv.sh local)
vsx_program_test(kv_crash_udp kv.sh udp)
vsx_program_test(kv_crash_afxdp kv.sh afxdp)
