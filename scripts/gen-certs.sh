#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# gen-certs.sh - make the cluster CA and node certificates for hamirror's TLS link.
#
# Uses the openssl CLI only. EC P-256 keys, 10-year validity, node certificates
# with CN=NODE, subjectAltName DNS:NODE and extendedKeyUsage serverAuth+clientAuth
# (each node is both client and server of the replication link). Keys are 0600.
# Idempotent: an existing CA is kept, existing node certificates are kept (and
# checked against the CA), missing ones are added.
set -euo pipefail

prog=${0##*/}
DAYS=3650

usage() {
	cat <<EOF
Usage: $prog OUTDIR NODE...

Create (or complete) the hamirror TLS material in OUTDIR:
  OUTDIR/ca.crt, OUTDIR/ca.key         the cluster CA (kept if it already exists)
  OUTDIR/NODE.crt, OUTDIR/NODE.key     one pair per NODE, signed by the CA
                                       (CN=NODE, subjectAltName DNS:NODE)

NODE must match a <server name="..."> of userconfig.xml. Keys are EC P-256 and
mode 0600; certificates are valid for $DAYS days. Copy ca.crt, NODE.crt and
NODE.key to each node and name them in its node.ini ([tls] ca, cert, key).

Options:
  -h, --help   show this help
EOF
}

die() {
	echo "$prog: error: $*" >&2
	exit 1
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
-*)
	echo "$prog: unknown option '$1'" >&2
	usage >&2
	exit 2
	;;
esac
if [ $# -lt 2 ]; then
	usage >&2
	exit 2
fi

command -v openssl >/dev/null 2>&1 || die "the 'openssl' command is not installed (apt-get install openssl)"

outdir=$1
shift
for n in "$@"; do
	[[ "$n" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] ||
		die "invalid node name '$n' (letters, digits, '.', '_', '-'; at most 63 characters)"
	[ "$n" != ca ] || die "'ca' is reserved for the CA files, choose another node name"
done

mkdir -p -- "$outdir" || die "cannot create directory '$outdir'"
if [ ! -d "$outdir" ] || [ ! -w "$outdir" ]; then
	die "'$outdir' is not a writable directory"
fi

umask 077
tmp=$(mktemp -d "$outdir/.gen-certs.XXXXXX") || die "cannot create a temporary directory in '$outdir'"
trap 'rm -rf -- "$tmp"' EXIT

# run CMD...: run openssl quietly, show its output only when it fails.
run() {
	if ! "$@" >"$tmp/out" 2>&1; then
		cat "$tmp/out" >&2
		die "command failed: $*"
	fi
}

serial() {
	# 128-bit positive serial number
	echo "0x01$(openssl rand -hex 15)"
}

ca_crt=$outdir/ca.crt
ca_key=$outdir/ca.key
if [ -e "$ca_crt" ] || [ -e "$ca_key" ]; then
	[ -f "$ca_crt" ] || die "'$ca_key' exists but '$ca_crt' does not; restore it or remove both to make a new CA"
	[ -f "$ca_key" ] || die "'$ca_crt' exists but '$ca_key' does not; restore it or remove both to make a new CA"
	openssl x509 -in "$ca_crt" -noout 2>/dev/null || die "'$ca_crt' is not a PEM certificate"
	openssl pkey -in "$ca_key" -noout 2>/dev/null || die "'$ca_key' is not a PEM private key"
	chmod 600 -- "$ca_key"
	echo "$prog: keeping existing CA $ca_crt"
else
	cat >"$tmp/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = hamirror cluster CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
	run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key"
	run openssl req -new -x509 -config "$tmp/ca.cnf" -key "$tmp/ca.key" -sha256 \
		-days "$DAYS" -set_serial "$(serial)" -out "$tmp/ca.crt"
	chmod 600 -- "$tmp/ca.key"
	chmod 644 -- "$tmp/ca.crt"
	mv -f -- "$tmp/ca.key" "$ca_key"
	mv -f -- "$tmp/ca.crt" "$ca_crt"
	echo "$prog: created CA $ca_crt"
fi

for n in "$@"; do
	crt=$outdir/$n.crt
	key=$outdir/$n.key
	if [ -e "$crt" ] || [ -e "$key" ]; then
		if [ ! -f "$crt" ] || [ ! -f "$key" ]; then
			die "only one of '$crt' and '$key' exists; remove it to make a new pair for '$n'"
		fi
		openssl verify -CAfile "$ca_crt" "$crt" >/dev/null 2>&1 ||
			die "'$crt' is not signed by '$ca_crt'; remove '$crt' and '$key' to make a new pair for '$n'"
		chmod 600 -- "$key"
		echo "$prog: keeping existing $crt"
		continue
	fi
	cat >"$tmp/$n.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$n
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$n.key"
	run openssl req -new -key "$tmp/$n.key" -subj "/CN=$n" -sha256 -out "$tmp/$n.csr"
	run openssl x509 -req -in "$tmp/$n.csr" -CA "$ca_crt" -CAkey "$ca_key" -sha256 \
		-days "$DAYS" -set_serial "$(serial)" -extfile "$tmp/$n.ext" -out "$tmp/$n.crt"
	chmod 600 -- "$tmp/$n.key"
	chmod 644 -- "$tmp/$n.crt"
	mv -f -- "$tmp/$n.key" "$key"
	mv -f -- "$tmp/$n.crt" "$crt"
	echo "$prog: created $crt"
done
