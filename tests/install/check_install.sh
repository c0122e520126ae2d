#!/bin/sh
# check_install.sh MAKE DIR: `make install` into DIR/root (PREFIX=/usr,
# SYSCONFDIR=/etc), every file checked; pkg-config finds the library, a
# program using the installed header builds and runs against it (shared
# and static); the installed daemon accepts the example configuration;
# a second install keeps an edited configuration; `make uninstall`
# removes what install put there, except the configuration.
set -eu
MAKE=$1
DIR=$2
ROOT=$DIR/root
fail() { echo "check-install: $*" >&2; exit 1; }

rm -rf "$DIR"
mkdir -p "$DIR"
$MAKE -s install DESTDIR="$ROOT" PREFIX=/usr SYSCONFDIR=/etc > "$DIR/install.log"

for f in usr/bin/cim-eventsd usr/bin/cim-events \
         usr/lib/libcimevents.so.0.2.0 usr/lib/libcimevents.a \
         usr/include/cim/events.h usr/lib/pkgconfig/cimevents.pc \
         usr/lib/systemd/system/cim-eventsd.service \
         usr/share/man/man1/cim-events.1 usr/share/man/man5/cim-eventsd.conf.5 \
         usr/share/man/man8/cim-eventsd.8 \
         etc/cim-events/cim-eventsd.conf.example etc/cim-events/cim-eventsd.conf; do
	[ -f "$ROOT/$f" ] || fail "$f was not installed"
done
[ "$(readlink "$ROOT/usr/lib/libcimevents.so.0.2")" = libcimevents.so.0.2.0 ] || fail "libcimevents.so.0.2 link"
[ "$(readlink "$ROOT/usr/lib/libcimevents.so")" = libcimevents.so.0.2 ] || fail "libcimevents.so link"
[ -x "$ROOT/usr/bin/cim-eventsd" ] || fail "cim-eventsd is not executable"
[ "$(stat -c %a "$ROOT/etc/cim-events/cim-eventsd.conf")" = 600 ] || fail "the configuration is not 0600"
grep -qx 'ExecStart=/usr/bin/cim-eventsd --config ${CREDENTIALS_DIRECTORY}/cim-eventsd.conf' \
	"$ROOT/usr/lib/systemd/system/cim-eventsd.service" || fail "the unit's ExecStart does not name /usr/bin"
for m in usr/share/man/man1/cim-events.1 usr/share/man/man5/cim-eventsd.conf.5 \
         usr/share/man/man8/cim-eventsd.8; do
	out=$(man -l --warnings "$ROOT/$m" 2>&1 >/dev/null) || fail "$m does not format"
	[ -z "$out" ] || fail "$m: $out"
done

# pkg-config and the header, as a user of the library builds
export PKG_CONFIG_PATH="$ROOT/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$ROOT"
pkg-config --exists cimevents || fail "pkg-config does not find cimevents"
[ "$(pkg-config --modversion cimevents)" = 0.2.0 ] || fail "pkg-config version"
cat > "$DIR/t.c" <<'C'
#include <cim/events.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	puts(cim_version());
	return strcmp(cim_version(), CIM_EVENTS_VERSION) != 0;
}
C
cc -std=c11 -Wall -Werror $(pkg-config --cflags cimevents) "$DIR/t.c" -o "$DIR/t-shared" \
	$(pkg-config --libs cimevents) -Wl,-rpath,"$ROOT/usr/lib" || fail "cannot build against the shared library"
[ "$("$DIR/t-shared")" = 0.2.0 ] || fail "the shared program does not run"
ldd "$DIR/t-shared" | grep -q "$ROOT/usr/lib/libcimevents.so.0.2" || fail "not linked with the installed library"
cc -std=c11 -Wall -Werror $(pkg-config --cflags cimevents) "$DIR/t.c" -o "$DIR/t-static" \
	"$ROOT/usr/lib/libcimevents.a" $(pkg-config --static --libs-only-l cimevents | sed 's/-lcimevents//') -lpthread \
	|| fail "cannot build against the static library"
[ "$("$DIR/t-static")" = 0.2.0 ] || fail "the static program does not run"

# the installed daemon and the example configuration
"$ROOT/usr/bin/cim-eventsd" --config "$ROOT/etc/cim-events/cim-eventsd.conf.example" \
	--check-config > "$DIR/check.txt" || fail "the example configuration is refused"
grep -q '^nats_url = nats://127.0.0.1:4222 ' "$DIR/check.txt" || fail "check-config output"
"$ROOT/usr/bin/cim-events" --version > /dev/null || fail "cim-events --version"

# a second install keeps the operator's configuration
echo "# edited" >> "$ROOT/etc/cim-events/cim-eventsd.conf"
$MAKE -s install DESTDIR="$ROOT" PREFIX=/usr SYSCONFDIR=/etc > "$DIR/install2.log"
grep -q '^# edited' "$ROOT/etc/cim-events/cim-eventsd.conf" || fail "install overwrote the configuration"

$MAKE -s uninstall DESTDIR="$ROOT" PREFIX=/usr SYSCONFDIR=/etc > "$DIR/uninstall.log"
left=$(cd "$ROOT" && find . -type f -o -type l | sort)
[ "$left" = "./etc/cim-events/cim-eventsd.conf" ] || fail "uninstall left: $left"
echo "check-install: ok ($ROOT)"
