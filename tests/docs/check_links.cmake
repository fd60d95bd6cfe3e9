# Checks the relative links of the docs (issue 14, item 6): README.md,
# docs/**/*.md and schema/README.md under ROOT. Every link whose target is
# not a URL with a scheme must name a file that exists (relative to the
# file holding the link), and its #anchor, if any, must match a heading of
# the target Markdown file. External links are not fetched: tests are
# hermetic. A CMake script, not Python: a fresh Debian 12 has no Python,
# and CI installs only what .ci/deps names.
#
#   cmake -DROOT=<repository> -P check_links.cmake
#   cmake -DROOT=<dir> -DEXPECT=<file> -P check_links.cmake
#
# Each broken link is printed as file:line: what is wrong, and the script
# fails. With EXPECT it succeeds only when the problems it finds are exactly
# the lines of that file, in order: the test of the checker itself
# (tests/docs/links_fixture).
#
# Anchors follow GitHub's heading ids: the heading text in lower case,
# ASCII punctuation other than '-' and '_' dropped, each space a '-', and
# "-1", "-2", ... after ids already taken in that file. Headings and links
# inside ``` fences and `code spans` do not count.
cmake_minimum_required(VERSION 3.25)
if(NOT DEFINED ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<repository> [-DEXPECT=<file>] -P check_links.cmake")
endif()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)

# Markdown uses ';', '[' and ']', which CMake lists treat specially: the
# text is read with them swapped for control characters no doc contains.
string(ASCII 1 LB)
string(ASCII 2 RB)
string(ASCII 3 SC)

# The lines of `path`, with ';' '[' ']' swapped and fenced lines emptied
# (so line numbers stay right): in `out_raw` as they are, in `out_text`
# with code spans removed too (the text in which links are looked for).
function(doc_lines path out_text out_raw)
  file(READ "${path}" text)
  string(REPLACE ";" "${SC}" text "${text}")
  string(REPLACE "[" "${LB}" text "${text}")
  string(REPLACE "]" "${RB}" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(stripped "")
  set(raw "")
  set(fence OFF)
  foreach(line IN LISTS lines)
    if(line MATCHES "^ *```")
      if(fence)
        set(fence OFF)
      else()
        set(fence ON)
      endif()
      set(line "")
    elseif(fence)
      set(line "")
    endif()
    # An empty element must survive the list: a placeholder stands for it.
    if(line STREQUAL "")
      set(line "${SC}")
    endif()
    list(APPEND raw "${line}")
    string(REGEX REPLACE "`[^`]*`" "" line "${line}")
    list(APPEND stripped "${line}")
  endforeach()
  set(${out_text} "${stripped}" PARENT_SCOPE)
  set(${out_raw} "${raw}" PARENT_SCOPE)
endfunction()

# GitHub's id for a heading's text.
function(heading_slug text out)
  string(TOLOWER "${text}" s)
  string(REPLACE "${LB}" "" s "${s}")
  string(REPLACE "${RB}" "" s "${s}")
  string(REPLACE "${SC}" "" s "${s}")
  string(REPLACE "\\" "" s "${s}")
  string(REGEX REPLACE "[!-,./:-@^`{-~]" "" s "${s}")
  string(STRIP "${s}" s)
  string(REPLACE " " "-" s "${s}")
  set(${out} "${s}" PARENT_SCOPE)
endfunction()

# The heading ids of a Markdown file, in `out` (a list), computed once.
function(file_anchors path out)
  string(MD5 key "${path}")
  get_property(known GLOBAL PROPERTY "anchors_${key}" SET)
  if(NOT known)
    # The raw lines: a code span in a heading keeps its words in the id
    # ("### `doctor`: checking" is #doctor-checking).
    doc_lines("${path}" unused raw)
    set(slugs "")
    foreach(line IN LISTS raw)
      if(line MATCHES "^#+ +(.*)$")
        string(REGEX REPLACE " +#+ *$" "" heading "${CMAKE_MATCH_1}")
        heading_slug("${heading}" slug)
        set(candidate "${slug}")
        set(i 0)
        while(candidate IN_LIST slugs)
          math(EXPR i "${i} + 1")
          set(candidate "${slug}-${i}")
        endwhile()
        list(APPEND slugs "${candidate}")
      endif()
    endforeach()
    set_property(GLOBAL PROPERTY "anchors_${key}" "${slugs}")
  endif()
  get_property(slugs GLOBAL PROPERTY "anchors_${key}")
  set(${out} "${slugs}" PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE docs LIST_DIRECTORIES false RELATIVE "${ROOT}" "${ROOT}/docs/*.md")
list(SORT docs)
set(files README.md ${docs} schema/README.md)

set(problems "")
set(links 0)
set(read 0)
foreach(rel IN LISTS files)
  set(path "${ROOT}/${rel}")
  if(NOT EXISTS "${path}")
    continue()
  endif()
  math(EXPR read "${read} + 1")
  get_filename_component(dir "${path}" DIRECTORY)
  doc_lines("${path}" lines unused)
  set(lineno 0)
  foreach(line IN LISTS lines)
    math(EXPR lineno "${lineno} + 1")
    string(REGEX MATCHALL "${RB}\\([^) ]*\\)" found "${line}")
    foreach(link IN LISTS found)
      string(REGEX REPLACE "^${RB}\\((.*)\\)$" "\\1" target "${link}")
      if(target MATCHES "^[A-Za-z][A-Za-z0-9+.-]*:")
        continue()  # http:, https:, mailto:: not fetched
      endif()
      math(EXPR links "${links} + 1")
      set(anchor "")
      set(file_part "${target}")
      if(target MATCHES "^([^#]*)#(.*)$")
        set(file_part "${CMAKE_MATCH_1}")
        set(anchor "${CMAKE_MATCH_2}")
      endif()
      if(file_part STREQUAL "")
        set(dest "${path}")
        set(file_part "this file")
      else()
        get_filename_component(dest "${dir}/${file_part}" ABSOLUTE)
      endif()
      if(NOT EXISTS "${dest}")
        list(APPEND problems "${rel}:${lineno}: ${target}: no file ${file_part}")
        continue()
      endif()
      if(NOT anchor STREQUAL "")
        if(NOT dest MATCHES "\\.md$")
          list(APPEND problems "${rel}:${lineno}: ${target}: #${anchor} in a file that is not Markdown")
          continue()
        endif()
        file_anchors("${dest}" slugs)
        if(NOT anchor IN_LIST slugs)
          list(APPEND problems "${rel}:${lineno}: ${target}: no heading #${anchor} in ${file_part}")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()

# Back to what the files hold, for the messages.
string(REPLACE "${LB}" "[" problems "${problems}")
string(REPLACE "${RB}" "]" problems "${problems}")

if(DEFINED EXPECT)
  file(STRINGS "${EXPECT}" expected)
  if(NOT problems STREQUAL expected)
    string(REPLACE ";" "\n  " got_text "${problems}")
    string(REPLACE ";" "\n  " want_text "${expected}")
    message(FATAL_ERROR "the checker found\n  ${got_text}\nbut should have found\n  ${want_text}")
  endif()
  list(LENGTH expected n)
  message(STATUS "docs links: the checker found exactly the ${n} expected problems")
  return()
endif()

if(read EQUAL 0 OR links EQUAL 0)
  message(FATAL_ERROR "docs links: read ${read} files under ${ROOT} and found ${links} relative links: nothing was checked")
endif()
list(LENGTH problems n)
if(n GREATER 0)
  foreach(p IN LISTS problems)
    message("${p}")
  endforeach()
  message(FATAL_ERROR "docs links: ${n} broken of ${links} relative links in ${read} files")
endif()
message(STATUS "docs links: ${links} relative links in ${read} files, all resolve")
