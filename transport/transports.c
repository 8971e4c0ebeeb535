/* transports.c - the table of transports known by name. */
#include <string.h>
#include "vsx/transport.h"

static const vsx_transport_ops_t *const transports[] = {
  &vsx_transport_sim,
  &vsx_transport_udp,
  &vsx_transport_afxdp,
};

const vsx_transport_ops_t *vsx_transport_find(const char *name) {
  for (size_t i = 0; i < VSX_ARRAY_CNT(transports); i++)
    if (name && !strcmp(transports[i]->name, name)) return transports[i];
  return NULL;
}
