/* SPDX-License-Identifier: MIT */
/* Secret file loader; see secret.h. */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

fp_status_t fp_secret_load(const fp_log_t *log, const char *path, uint8_t *buf, size_t *len_p)
{
    struct stat st;
    size_t len = 0;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fp_error(log, "cannot open secret file %s: %s", path, strerror(errno));
        return FP_ERR_IO;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        fp_warn(log, "secret file %s is readable by group or others (mode %03o)", path,
                (unsigned)(st.st_mode & 0777));
    while (len < FP_SECRET_MAX) {
        n = read(fd, buf + len, FP_SECRET_MAX - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fp_error(log, "cannot read secret file %s: %s", path, strerror(errno));
            close(fd);
            return FP_ERR_IO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len == FP_SECRET_MAX) {
        fp_error(log, "secret file %s is larger than %u bytes", path, FP_SECRET_MAX - 1);
        return FP_ERR_INVALID_PARAM;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len < FP_SECRET_MIN) {
        fp_error(log, "secret in %s is too short: %zu bytes, at least %u needed", path, len,
                 FP_SECRET_MIN);
        return FP_ERR_INVALID_PARAM;
    }
    *len_p = len;
    return FP_OK;
}
