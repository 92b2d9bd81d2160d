/* SPDX-License-Identifier: MIT */
/*
 * The library's version and status texts, as the public API gives them
 * (farpool_version(), farpool_version_string(), farpool_status_string()).
 * The build passes the project's version from CMakeLists.txt; the header's
 * FARPOOL_VERSION must say the same.
 */
#include <farpool/farpool.h>

#define FP_STR_(x) #x
#define FP_STR(x)  FP_STR_(x)

_Static_assert(FARPOOL_VERSION ==
                   FP_VERSION_MAJOR * 10000 + FP_VERSION_MINOR * 100 + FP_VERSION_PATCH,
               "FARPOOL_VERSION in include/farpool/farpool.h differs from the project version "
               "in CMakeLists.txt");

unsigned farpool_version(void)
{
    return FARPOOL_VERSION;
}

const char *farpool_version_string(void)
{
    return FP_STR(FP_VERSION_MAJOR) "." FP_STR(FP_VERSION_MINOR) "." FP_STR(FP_VERSION_PATCH);
}

const char *farpool_status_string(fp_status_t status)
{
    return fp_status_string(status);
}
