# SPDX-License-Identifier: MIT
# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt): installs
# farpoold's systemd units and its configuration file, with the paths of the
# prefix given at install time (--prefix), which configure_file() could not
# know. CMakeLists.txt sets FP_SRC, FP_BUILD, FP_BINDIR, FP_SYSCONFDIR and
# FP_UNITDIR first (GNUInstallDirs' relative directories, or absolute ones).
#
#   UNITDIR/farpoold.service, farpoold@.service   ExecStart= PREFIX/BINDIR/farpoold,
#       --config SYSCONFDIR/farpool/..., LoadCredential= SYSCONFDIR/farpool/secret
#   SYSCONFDIR/farpool/farpoold.conf   the example, unless a file is there already:
#       an operator's configuration is never overwritten
#
# SYSCONFDIR is /etc for the prefix /usr (as GNUInstallDirs has it), else
# PREFIX/etc. file(INSTALL) honours DESTDIR and lists the files in
# install_manifest.txt.

function(fp_full_dir dir out)
    if(IS_ABSOLUTE "${dir}")
        set(${out} "${dir}" PARENT_SCOPE)
    else()
        set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
    endif()
endfunction()

fp_full_dir("${FP_BINDIR}" fp_bindir)
fp_full_dir("${FP_UNITDIR}" fp_unitdir)
if(NOT IS_ABSOLUTE "${FP_SYSCONFDIR}" AND CMAKE_INSTALL_PREFIX STREQUAL "/usr"
   AND FP_SYSCONFDIR STREQUAL "etc")
    set(fp_sysconfdir "/etc")
else()
    fp_full_dir("${FP_SYSCONFDIR}" fp_sysconfdir)
endif()

# Each unit filled in under FP_BUILD, then installed from there.
file(GLOB fp_units "${FP_SRC}/dist/systemd/*.service.in")
foreach(in ${fp_units})
    get_filename_component(name "${in}" NAME)
    string(REGEX REPLACE "\\.in$" "" name "${name}")
    file(READ "${in}" text)
    string(REPLACE "@FARPOOLD@" "${fp_bindir}/farpoold" text "${text}")
    string(REPLACE "@SYSCONFDIR@" "${fp_sysconfdir}" text "${text}")
    file(WRITE "${FP_BUILD}/dist/systemd/${name}" "${text}")
    file(INSTALL DESTINATION "${fp_unitdir}" TYPE FILE FILES "${FP_BUILD}/dist/systemd/${name}")
endforeach()

if(EXISTS "$ENV{DESTDIR}${fp_sysconfdir}/farpool/farpoold.conf")
    message(STATUS "Keeping: $ENV{DESTDIR}${fp_sysconfdir}/farpool/farpoold.conf "
                   "(the example is in the doc directory)")
else()
    file(INSTALL DESTINATION "${fp_sysconfdir}/farpool" TYPE FILE
         FILES "${FP_SRC}/dist/farpoold.conf")
endif()
