/* The HTTPS identity: loading a certificate and key, making a self-signed pair. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "qm/http.h"
#include "http-tls.h"

/* Offered in ALPN, so that clients that ask for h2 fall back cleanly. */
static const char *alpn_protocols[] = {"http/1.1", NULL};

/*
 * Forward-secret AEAD suites only, AES-GCM first: with AES-NI, mbedTLS 2.28
 * encrypts AES-GCM faster than ChaCha20-Poly1305, its default first choice.
 */
static const int ciphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

/* Session tickets expire after this many seconds. */
#define TICKET_LIFETIME_S 86400

/* Fills err with what failed, on which path if any, and mbedTLS's text for rc. */
static int tls_fail(struct qm_error *err, int rc, const char *what, const char *path)
{
    char desc[200];

    mbedtls_strerror(rc, desc, sizeof(desc));
    if (path)
        return qm_fail(err, 500, "%s '%s' failed: %s", what, path, desc);
    return qm_fail(err, 500, "%s failed: %s", what, desc);
}

static int seed_drbg(mbedtls_ctr_drbg_context *drbg, mbedtls_entropy_context *entropy,
                     const char *personalization, struct qm_error *err)
{
    int rc = mbedtls_ctr_drbg_seed(drbg, mbedtls_entropy_func, entropy,
                                   (const unsigned char *)personalization,
                                   strlen(personalization));

    if (rc != 0)
        return tls_fail(err, rc, "seeding the random generator", NULL);
    return 0;
}

static int configure_ssl(struct http_tls *tls, struct qm_error *err)
{
    mbedtls_ssl_config *conf = &tls->conf;
    int rc;

    rc = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_SERVER,
                                     MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0)
        return tls_fail(err, rc, "setting TLS defaults", NULL);
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &tls->drbg);
    /* TLS 1.2 is protocol version 3.3. mbedTLS 2.28 supports nothing newer in production. */
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(conf, ciphersuites);
    rc = mbedtls_ssl_conf_own_cert(conf, &tls->cert, &tls->key);
    if (rc != 0)
        return tls_fail(err, rc, "setting the server certificate", NULL);
    rc = mbedtls_ssl_conf_alpn_protocols(conf, alpn_protocols);
    if (rc != 0)
        return tls_fail(err, rc, "setting ALPN protocols", NULL);

    mbedtls_ssl_conf_session_cache(conf, &tls->cache, mbedtls_ssl_cache_get,
                                   mbedtls_ssl_cache_set);
    rc = mbedtls_ssl_ticket_setup(&tls->ticket, mbedtls_ctr_drbg_random, &tls->drbg,
                                  MBEDTLS_CIPHER_AES_256_GCM, TICKET_LIFETIME_S);
    if (rc != 0)
        return tls_fail(err, rc, "setting up session tickets", NULL);
    mbedtls_ssl_conf_session_tickets_cb(conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &tls->ticket);
    return 0;
}

int http_tls_load(struct http_tls **out, const char *cert_path, const char *key_path,
                  struct qm_error *err)
{
    struct http_tls *tls = qm_calloc(1, sizeof(*tls));
    int rc;

    mbedtls_ssl_config_init(&tls->conf);
    mbedtls_x509_crt_init(&tls->cert);
    mbedtls_pk_init(&tls->key);
    mbedtls_entropy_init(&tls->entropy);
    mbedtls_ctr_drbg_init(&tls->drbg);
    mbedtls_ssl_cache_init(&tls->cache);
    mbedtls_ssl_ticket_init(&tls->ticket);

    if (seed_drbg(&tls->drbg, &tls->entropy, "qmd https", err) < 0)
        goto fail;
    rc = mbedtls_x509_crt_parse_file(&tls->cert, cert_path);
    if (rc != 0) {
        tls_fail(err, rc, "loading certificate", cert_path);
        goto fail;
    }
    rc = mbedtls_pk_parse_keyfile(&tls->key, key_path, NULL);
    if (rc != 0) {
        tls_fail(err, rc, "loading private key", key_path);
        goto fail;
    }
    rc = mbedtls_pk_check_pair(&tls->cert.pk, &tls->key);
    if (rc != 0) {
        qm_fail(err, 500, "private key '%s' does not match certificate '%s'",
                key_path, cert_path);
        goto fail;
    }
    if (configure_ssl(tls, err) < 0)
        goto fail;
    *out = tls;
    return 0;

fail:
    http_tls_free(tls);
    return -1;
}

void http_tls_free(struct http_tls *tls)
{
    if (!tls)
        return;
    mbedtls_ssl_config_free(&tls->conf);
    mbedtls_ssl_ticket_free(&tls->ticket);
    mbedtls_ssl_cache_free(&tls->cache);
    mbedtls_x509_crt_free(&tls->cert);
    mbedtls_pk_free(&tls->key);
    mbedtls_ctr_drbg_free(&tls->drbg);
    mbedtls_entropy_free(&tls->entropy);
    free(tls);
}

/* Host names only, because the name goes unescaped into a DN string and a dNSName. */
static bool valid_common_name(const char *cn)
{
    if (!*cn || strlen(cn) > 64)
        return false;
    for (const char *p = cn; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

/*
 * Writes the DER of one GeneralName (RFC 5280, section 4.2.1.6) before *p:
 * tag 2 is dNSName, tag 7 is iPAddress.
 */
static int write_general_name(unsigned char **p, unsigned char *start, int tag,
                              const void *data, size_t len)
{
    int total = 0, rc;

    rc = mbedtls_asn1_write_raw_buffer(p, start, data, len);
    if (rc < 0)
        return rc;
    total += rc;
    rc = mbedtls_asn1_write_len(p, start, len);
    if (rc < 0)
        return rc;
    total += rc;
    rc = mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | tag);
    if (rc < 0)
        return rc;
    return total + rc;
}

/* Wraps the len bytes before *p in a SEQUENCE. */
static int write_sequence(unsigned char **p, unsigned char *start, int len)
{
    int rc = mbedtls_asn1_write_len(p, start, (size_t)len);

    if (rc < 0)
        return rc;
    int total = len + rc;
    rc = mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (rc < 0)
        return rc;
    return total + rc;
}

/* Adds subjectAltName: DNS common_name, DNS localhost and IP 127.0.0.1. */
static int add_subject_alt_names(mbedtls_x509write_cert *crt, const char *common_name)
{
    static const unsigned char loopback[4] = {127, 0, 0, 1};
    unsigned char buf[512];
    unsigned char *p = buf + sizeof(buf);
    int len = 0, rc;

    /* asn1write fills the buffer from its end, so the names go in reverse order. */
    rc = write_general_name(&p, buf, 7, loopback, sizeof(loopback));
    if (rc < 0)
        return rc;
    len += rc;
    rc = write_general_name(&p, buf, 2, "localhost", strlen("localhost"));
    if (rc < 0)
        return rc;
    len += rc;
    if (strcmp(common_name, "localhost") != 0) {
        rc = write_general_name(&p, buf, 2, common_name, strlen(common_name));
        if (rc < 0)
            return rc;
        len += rc;
    }
    len = write_sequence(&p, buf, len);
    if (len < 0)
        return len;
    return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
                                               0, p, (size_t)len);
}

/* Adds extendedKeyUsage serverAuth. */
static int add_server_auth_usage(mbedtls_x509write_cert *crt)
{
    unsigned char buf[64];
    unsigned char *p = buf + sizeof(buf);
    int len = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));

    if (len < 0)
        return len;
    len = write_sequence(&p, buf, len);
    if (len < 0)
        return len;
    return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                               0, p, (size_t)len);
}

/* RSA keys also encrypt the premaster secret of TLS_RSA suites; EC keys only sign. */
static unsigned int key_usage(mbedtls_pk_context *key)
{
    unsigned int usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;

    if (mbedtls_pk_get_type(key) == MBEDTLS_PK_RSA)
        usage |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
    return usage;
}

/* Formats t as the YYYYMMDDhhmmss UTC time that mbedtls_x509write_crt_set_validity expects. */
static void format_validity_time(time_t t, char out[16])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/* Builds the self-signed certificate for key as PEM into pem. */
static int write_certificate(mbedtls_pk_context *key, const char *common_name,
                             mbedtls_ctr_drbg_context *drbg, unsigned char *pem,
                             size_t pem_size, struct qm_error *err)
{
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
    unsigned char serial_bytes[16];
    char subject[96], not_before[16], not_after[16];
    time_t now = time(NULL);
    int rc;

    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi_init(&serial);
    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, key);
    mbedtls_x509write_crt_set_issuer_key(&crt, key);

    snprintf(subject, sizeof(subject), "CN=%s", common_name);
    rc = mbedtls_x509write_crt_set_subject_name(&crt, subject);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_issuer_name(&crt, subject);
    if (rc != 0)
        goto out;

    /* A random positive serial, so that clients never see two certificates with one. */
    rc = mbedtls_ctr_drbg_random(drbg, serial_bytes, sizeof(serial_bytes));
    if (rc != 0)
        goto out;
    serial_bytes[0] &= 0x7f;
    rc = mbedtls_mpi_read_binary(&serial, serial_bytes, sizeof(serial_bytes));
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_serial(&crt, &serial);
    if (rc != 0)
        goto out;

    /* Valid from a day back, for clients whose clock runs behind, for 10 years. */
    format_validity_time(now - 86400, not_before);
    format_validity_time(now + 3650L * 86400, not_after);
    rc = mbedtls_x509write_crt_set_validity(&crt, not_before, not_after);
    if (rc != 0)
        goto out;

    rc = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_subject_key_identifier(&crt);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_authority_key_identifier(&crt);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_key_usage(&crt, key_usage(key));
    if (rc == 0)
        rc = add_server_auth_usage(&crt);
    if (rc == 0)
        rc = add_subject_alt_names(&crt, common_name);
    if (rc != 0)
        goto out;

    rc = mbedtls_x509write_crt_pem(&crt, pem, pem_size, mbedtls_ctr_drbg_random, drbg);

out:
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&crt);
    if (rc != 0)
        return tls_fail(err, rc, "creating a self-signed certificate", NULL);
    return 0;
}

static int generate_key(mbedtls_pk_context *key, mbedtls_ctr_drbg_context *drbg,
                        const char *key_path, struct qm_error *err)
{
    unsigned char pem[4096];
    int rc;

    rc = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0)
        rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
                                 mbedtls_ctr_drbg_random, drbg);
    if (rc == 0)
        rc = mbedtls_pk_write_key_pem(key, pem, sizeof(pem));
    if (rc != 0)
        return tls_fail(err, rc, "generating a P-256 key for", key_path);
    rc = qm_write_file_atomic(key_path, (const char *)pem, strlen((const char *)pem), 0600, err);
    mbedtls_platform_zeroize(pem, sizeof(pem));
    return rc;
}

int http_tls_ensure_self_signed(const char *cert_path, const char *key_path,
                                const char *common_name, struct qm_error *err)
{
    bool have_cert = access(cert_path, F_OK) == 0;
    bool have_key = access(key_path, F_OK) == 0;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context key;
    unsigned char pem[4096];
    int rc = -1;

    if (have_cert && have_key)
        return 0;
    if (!valid_common_name(common_name))
        return qm_fail(err, 400, "invalid common name '%s' for a certificate: expected a "
                       "host name or an IP address", common_name);

    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_pk_init(&key);
    if (seed_drbg(&drbg, &entropy, "qmd certificate", err) < 0)
        goto out;

    /* A key without its certificate is kept, but a certificate without its key is useless. */
    if (have_key) {
        int prc = mbedtls_pk_parse_keyfile(&key, key_path, NULL);
        if (prc != 0) {
            tls_fail(err, prc, "loading private key", key_path);
            goto out;
        }
    } else if (generate_key(&key, &drbg, key_path, err) < 0) {
        goto out;
    }

    if (write_certificate(&key, common_name, &drbg, pem, sizeof(pem), err) < 0)
        goto out;
    if (qm_write_file_atomic(cert_path, (const char *)pem, strlen((const char *)pem), 0644,
                             err) < 0)
        goto out;
    qm_log(QM_LOG_INFO, 0, "created a self-signed certificate for '%s' in '%s'", common_name,
           cert_path);
    rc = 0;

out:
    mbedtls_pk_free(&key);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return rc;
}
