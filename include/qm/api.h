/* The REST API of qmd, served by the HTTP server. */
#ifndef QM_API_H
#define QM_API_H

#include "qm/http.h"

#define QM_VERSION "0.1.0"
/* The Proxmox VE release whose qemu-server API this follows. */
#define QM_PVE_API_VERSION "9.2.6"
#define QM_PVE_API_RELEASE "9.2"

/* The http_handler_fn of qmd; data is the struct qm_node. */
void qm_api_handle(struct http_request *req, void *data);

#endif
