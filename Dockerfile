# weir container image: multi-stage, non-root, read-only-root-filesystem
# friendly (everything weir writes goes under the /var/lib/weir volume).
#
#   docker build -t weir:0.1.0 .
#   docker run --rm -p 24224:24224 -p 24231:24231 -v weir-data:/var/lib/weir weir:0.1.0
#
# The Debian release matches the one the project builds and tests on
# (bookworm); the package lists are checked against the Makefile's PKGS and
# scripts/install-deps.sh by test/integration/test_packaging.py.
ARG DEBIAN_RELEASE=bookworm

# ---- build: compilers and the -dev packages ---------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config \
      libevent-dev libmsgpack-dev libjansson-dev libssl-dev zlib1g-dev \
      libzstd-dev libcurl4-openssl-dev libpcre2-dev librdkafka-dev libsnappy-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make BUILD=/tmp/build -j"$(nproc)" /tmp/build/weir \
 && make install BUILD=/tmp/build DESTDIR=/stage PREFIX=/usr \
 && /stage/usr/bin/weir --version

# ---- runtime: only the shared libraries weir links ---------------------------
FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates tzdata \
      libevent-2.1-7 libevent-pthreads-2.1-7 libmsgpackc2 libjansson4 libssl3 zlib1g \
      libzstd1 libcurl4 libpcre2-8-0 librdkafka1 libsnappy1v5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 weir \
 && useradd --system --uid 10001 --gid weir --home-dir /var/lib/weir --shell /usr/sbin/nologin weir \
 && install -d -o weir -g weir -m 0750 /var/lib/weir
COPY --from=build /stage/usr/bin/weir /usr/bin/weir
COPY --from=build /stage/usr/share/doc/weir /usr/share/doc/weir
COPY packaging/weir.conf /etc/weir/weir.conf
USER 10001:10001
WORKDIR /var/lib/weir
VOLUME ["/var/lib/weir"]
# forward (TCP, and UDP heartbeats); monitor (/metrics, probes)
EXPOSE 24224/tcp 24224/udp 24231/tcp
# SIGTERM drains (acks, buffer flush) within <system> shutdown_timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/weir"]
CMD ["-c", "/etc/weir/weir.conf"]
