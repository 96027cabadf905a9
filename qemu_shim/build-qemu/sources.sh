# shellcheck shell=bash
# Part of build-qemu.sh: the apt sources. QEMU 10's source and meson >= 1.5
# come from <codename>-backports, which a stock bookworm machine does not
# have, and `apt-get source` needs a deb-src entry. This part adds both, with
# the URIs and keyring of the machine's own Debian archive entry.
#
# Uses from the driver: CODENAME, BACKPORTS_SUITE, MESON_MIN, log, warn, die,
# need_root_for; from scripts/lib/apt.sh: tlpb_apt_update,
# tlpb_apt_sources_changed.

BACKPORTS_FILE=/etc/apt/sources.list.d/tlpbridge-backports.sources

# Print "URIS<TAB>SIGNED_BY<TAB>COMPONENTS" of the main Debian archive as
# configured on this machine (deb822 or one-line format); fall back to defaults.
debian_archive() {
    local f out=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && [ "$f" != "$BACKPORTS_FILE" ] || continue
        out=$(awk -v suite="$CODENAME" '
            function flush() {
                if (uris != "" && (" " suites " ") ~ (" " suite " ") && types ~ /(^| )deb( |$)/ && !found) {
                    printf "%s\t%s\t%s\n", uris, signed, comps; found = 1
                }
                uris = ""; suites = ""; signed = ""; comps = ""; types = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1); gsub(/^[ \t]+|[ \t]+$/, "", val)
                if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "signed-by") signed = val
                else if (key == "components") comps = val
                else if (key == "types") types = val
            }
            END { flush() }' "$f")
        [ -n "$out" ] && break
    done
    if [ -z "$out" ] && [ -f /etc/apt/sources.list ]; then
        out=$(awk -v suite="$CODENAME" '
            $1 == "deb" {
                i = 2; opts = ""
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
                if ($(i+1) == suite) {
                    signed = ""
                    if (match(opts, /signed-by=[^] ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
                    comps = ""; for (j = i + 2; j <= NF; j++) comps = comps (comps ? " " : "") $j
                    printf "%s\t%s\t%s\n", $i, signed, comps; exit
                }
            }' /etc/apt/sources.list)
    fi
    if [ -z "$out" ]; then
        warn "no '$CODENAME' entry found in apt sources; using deb.debian.org"
        out=$(printf 'http://deb.debian.org/debian\t/usr/share/keyrings/debian-archive-keyring.gpg\tmain')
    fi
    printf '%s\n' "$out"
}

# Make sure <codename>-backports is configured for both deb and deb-src.
# The file is rewritten (and the lists fetched again) only if its content
# would change.
ensure_backports_source() {
    local line uris signed comps content
    line=$(debian_archive)
    IFS=$'\t' read -r uris signed comps <<<"$line"
    [ -n "$comps" ] || comps=main
    case " $comps " in *" main "*) ;; *) comps="main $comps" ;; esac
    content="# Added by tlpbridge qemu_shim/build-qemu.sh: QEMU 10 source and meson >= $MESON_MIN
Types: deb deb-src
URIs: $uris
Suites: $BACKPORTS_SUITE
Components: $comps"
    case $signed in
        /*) content="$content
Signed-By: $signed" ;;
        "") ;;
        *) warn "Signed-By of the $CODENAME source is not a file path; relying on the default keyrings" ;;
    esac
    if [ -f "$BACKPORTS_FILE" ] && [ "$(cat "$BACKPORTS_FILE")" = "$content" ]; then
        return 0
    fi
    need_root_for "apt source '$BACKPORTS_SUITE' (deb and deb-src) must be added"
    log "adding $BACKPORTS_SUITE (deb, deb-src) as $BACKPORTS_FILE"
    printf '%s\n' "$content" >"$BACKPORTS_FILE.tmp.$$" \
        && mv -f "$BACKPORTS_FILE.tmp.$$" "$BACKPORTS_FILE" \
        || die "cannot write $BACKPORTS_FILE"
    tlpb_apt_sources_changed
    tlpb_apt_update || die "apt-get update failed (network or apt sources problem; see output above)"
}
