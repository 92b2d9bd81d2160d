/* SPDX-License-Identifier: MIT */
/* Size and address parsers; see parse.h. */
#include "parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

fp_status_t fp_parse_size(const char *text, uint64_t *size_p)
{
    const char *p = text;
    uint64_t value = 0;
    unsigned shift = 0;

    if (text == NULL || !isdigit((unsigned char)*p))
        return FP_ERR_INVALID_PARAM;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return FP_ERR_OUT_OF_RANGE;
        value = value * 10 + digit;
    }
    switch (toupper((unsigned char)*p)) {
    case '\0':
        break;
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    case 'P':
        shift = 50;
        break;
    case 'B':
        if (p[1] != '\0')
            return FP_ERR_INVALID_PARAM;
        break;
    default:
        return FP_ERR_INVALID_PARAM;
    }
    if (shift != 0) {
        p++;
        if (*p == 'i' || *p == 'I')
            p++;
        if (*p == 'b' || *p == 'B')
            p++;
    } else if (*p != '\0') {
        p++;
    }
    if (*p != '\0')
        return FP_ERR_INVALID_PARAM;
    if (shift != 0 && value > (UINT64_MAX >> shift))
        return FP_ERR_OUT_OF_RANGE;
    *size_p = value << shift;
    return FP_OK;
}

void fp_format_size(uint64_t size, char *buf, size_t buflen)
{
    static const char units[] = "KMGTP";
    int unit = -1;

    while (size != 0 && (size & 1023) == 0 && unit < 4) {
        size >>= 10;
        unit++;
    }
    if (unit < 0)
        snprintf(buf, buflen, "%llu", (unsigned long long)size);
    else
        snprintf(buf, buflen, "%llu%c", (unsigned long long)size, units[unit]);
}

fp_status_t fp_addr_split(const char *text, char *host, uint16_t *port_p)
{
    const char *colon, *host_start, *host_end;
    unsigned long port = 0;
    size_t host_len;

    if (text == NULL)
        return FP_ERR_ADDRESS;
    if (text[0] == '[') {
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':')
            return FP_ERR_ADDRESS;
        colon = host_end + 1;
    } else {
        host_start = text;
        colon = strrchr(text, ':');
        if (colon == NULL)
            return FP_ERR_ADDRESS;
        host_end = colon;
        if (memchr(host_start, ':', (size_t)(host_end - host_start)) != NULL)
            return FP_ERR_ADDRESS; /* a bare IPv6 address needs brackets */
    }
    host_len = (size_t)(host_end - host_start);
    if (host_len == 0 || host_len >= FP_HOST_MAX)
        return FP_ERR_ADDRESS;
    if (colon[1] == '\0' || strlen(colon + 1) > 5)
        return FP_ERR_ADDRESS;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return FP_ERR_ADDRESS;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        return FP_ERR_ADDRESS;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    *port_p = (uint16_t)port;
    return FP_OK;
}

fp_status_t fp_addr_parse(const char *text, fp_addr_t *addr_p)
{
    char host[FP_HOST_MAX];
    char service[8];
    struct addrinfo hints, *res;
    uint16_t port;
    fp_status_t status;

    status = fp_addr_split(text, host, &port);
    if (status != FP_OK)
        return status;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL)
        return FP_ERR_ADDRESS;
    if (res->ai_addrlen > sizeof(addr_p->ss)) {
        freeaddrinfo(res);
        return FP_ERR_ADDRESS;
    }
    memset(addr_p, 0, sizeof(*addr_p));
    memcpy(&addr_p->ss, res->ai_addr, res->ai_addrlen);
    addr_p->len = res->ai_addrlen;
    freeaddrinfo(res);
    return FP_OK;
}

bool fp_addr_is_loopback(const fp_addr_t *addr)
{
    if (addr->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->ss;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

void fp_addr_format(const fp_addr_t *addr, char *buf, size_t buflen)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (addr->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, buflen, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (addr->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, buflen, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, buflen, "?");
    }
}
