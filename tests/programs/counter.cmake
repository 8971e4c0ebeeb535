# vsx-counter: three members on 127.0.0.1 add known amounts and agree on
# the total; a fourth joins late and gets the counter by state transfer.
# No root needed (UDP unicast on loopback, peers given with --peer).
vsx_program_test(program_counter counter.sh)
