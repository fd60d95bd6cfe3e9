# Install layout (FHS, via GNUInstallDirs) and the Debian package (CPack DEB).
#
#   cmake --install build                      # /usr/local/...; /etc/headachemd
#   cd build && cpack -G DEB                   # headachemd-sync_<version>_<arch>.deb, prefix /usr
#
# The binary goes to bin (daemon/CMakeLists.txt), the unit to
# lib/systemd/system, the sysusers.d and tmpfiles.d files to lib/sysusers.d
# and lib/tmpfiles.d (systemd searches /usr/local/lib and /usr/lib for all
# three), the example config to /etc/headachemd (absolute: the daemon reads
# /etc/headachemd/sync.toml whatever the prefix), the docs to
# share/doc/headachemd-sync.
include(GNUInstallDirs)
# `make install` and cpack do not build ALL first (tests and benchmarks take
# many minutes on two cores): they package what was built. .ci/package-test
# builds headachemd-sync, then runs cpack.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(HEADACHEMD_DOCDIR ${CMAKE_INSTALL_DATAROOTDIR}/doc/headachemd-sync)

# The unit names the binary and the docs by absolute path (systemd needs
# that); they are rewritten for the prefix at install time, because cpack
# installs with its own prefix (/usr), not the one the build was configured with.
install(CODE "set(headachemd_unit_source \"${PROJECT_SOURCE_DIR}/systemd/headachemd-sync.service\")")
install(CODE "set(headachemd_unit_staging \"${PROJECT_BINARY_DIR}/install/headachemd-sync.service\")")
install(CODE [[
  file(READ "${headachemd_unit_source}" unit)
  string(REPLACE "/usr/bin/headachemd-sync" "${CMAKE_INSTALL_PREFIX}/bin/headachemd-sync" unit "${unit}")
  string(REPLACE "/usr/share/doc/headachemd-sync" "${CMAKE_INSTALL_PREFIX}/share/doc/headachemd-sync"
         unit "${unit}")
  file(WRITE "${headachemd_unit_staging}" "${unit}")
  file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES "${headachemd_unit_staging}")
]])
install(FILES systemd/headachemd-sync.sysusers DESTINATION lib/sysusers.d RENAME headachemd-sync.conf)
install(FILES systemd/headachemd-sync.tmpfiles DESTINATION lib/tmpfiles.d RENAME headachemd-sync.conf)
install(FILES config.example.toml DESTINATION /etc/headachemd RENAME sync.toml.example)
# The docs keep the repository's tree (README.md, docs/, schema/README.md),
# so that their relative links, which the docs_links test checks in the
# source tree, resolve in the installed copy as well.
install(FILES README.md DESTINATION ${HEADACHEMD_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${HEADACHEMD_DOCDIR}/docs)
install(FILES schema/README.md DESTINATION ${HEADACHEMD_DOCDIR}/schema)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME headachemd-sync)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
    "Holds SMART on FHIR refresh tokens for enrolled patients, syncs their FHIR R4 data from the clinic's EHR and writes headache tables into SQLite for analysts. Runs as a hardened systemd service; nothing is enabled at install.")
set(CPACK_PACKAGE_CONTACT "HeadacheMD Sync maintainers <sync@headachemd.invalid>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# DESTDIR staging, so the absolute /etc destination lands in the package;
# with it, CPACK_INSTALL_PREFIX (not the build's /usr/local) is the
# CMAKE_INSTALL_PREFIX while installing, which the unit's ExecStart= gets.
set(CPACK_SET_DESTDIR ON)
set(CPACK_OUTPUT_FILE_PREFIX ${PROJECT_BINARY_DIR}/package)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies from dpkg-shlibdeps (dpkg-dev); systemd for the unit
# settings used (PrivateIPC=, ProtectProc=, LoadCredential=) and for
# systemd-sysusers and systemd-tmpfiles in postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd (>= 252)")
# Maintainer scripts: systemd/debian/ (they only install the files of systemd/).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/systemd/debian/postinst ${PROJECT_SOURCE_DIR}/systemd/debian/prerm
    ${PROJECT_SOURCE_DIR}/systemd/debian/postrm ${PROJECT_SOURCE_DIR}/systemd/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
