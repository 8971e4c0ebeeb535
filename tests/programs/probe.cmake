# vsx-probe and vsx-perf (demos/vsx_probe.c, demos/vsx-perf).
# probe_local: three probes on 127.0.0.1 (udp unicast, --peer), no root:
#   fifo, total and point-to-point; every member delivers everything and
#   the trace checker passes.
# perf_group_quick: `vsx-perf group --quick` as root in test hosts: every
#   row of its table has nonzero rates and its namespaces are gone after.
vsx_program_test(probe_local probe_local.sh)
vsx_program_test(perf_group_quick perf_quick.sh)
