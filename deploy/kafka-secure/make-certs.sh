#!/usr/bin/env bash
# Certificates for the docker compose "secure" profile: a private CA and the broker's certificate
# (names kafka-secure and localhost), PEM files in deploy/kafka-secure/certs/. Run once before
# `docker compose --profile secure up`. Needs openssl.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs && cd certs
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 825 -subj "/CN=pushstream compose CA" 2>/dev/null
openssl req "${ec[@]}" -keyout broker.key -out broker.csr -subj "/CN=kafka-secure" 2>/dev/null
printf 'subjectAltName=DNS:kafka-secure,DNS:localhost,IP:127.0.0.1\n' > broker.ext
openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 825 \
  -extfile broker.ext 2>/dev/null
# Kafka's PEM keystore takes the certificate and its key in one file (PKCS#8 key).
openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
cat broker.pem broker.pk8 > broker-keystore.pem
chmod 644 ./*.pem
echo "certificates in $(pwd): ca.pem (give it to clients as kafka.ssl_ca_file), broker-keystore.pem"
