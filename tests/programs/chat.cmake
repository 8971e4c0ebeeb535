# vsx-chat (demos/vsx_chat.c): the README's demo (demos/run-demo.sh) as a
# test over AF_XDP and over UDP multicast in test hosts (root; skipped
# otherwise), two members on 127.0.0.1 with --peer (no root), and a
# partition and its heal.
vsx_program_test(chat_demo_afxdp chat.sh afxdp)
vsx_program_test(chat_demo_udp chat.sh udp)
vsx_program_test(chat_peer_loopback chat-peer.sh)
# A partition and its heal (root; skipped otherwise).
vsx_program_test(chat_partition_afxdp chat-partition.sh afxdp)
vsx_program_test(chat_partition_udp chat-partition.sh udp)
