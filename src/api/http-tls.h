/* The TLS identity shared by every HTTPS connection of a server. */
#ifndef QM_API_HTTP_TLS_H
#define QM_API_HTTP_TLS_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

struct http_tls {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_ssl_cache_context cache;    /* session IDs for resumption */
    mbedtls_ssl_ticket_context ticket;  /* session tickets for resumption */
};

#endif
