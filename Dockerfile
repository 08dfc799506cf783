# One image per service: docker build --build-arg SERVICE=gateway .
# natsadmin (declares the streams before the services start) is built the same way:
# docker build --build-arg SERVICE=natsadmin --build-arg PACKAGE=./cmd/natsadmin .
# The binaries are static and carry the time zone database, so the runtime image needs
# nothing but them.
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
ARG SERVICE
ARG PACKAGE=./services/${SERVICE}/cmd/${SERVICE}
RUN test -n "$SERVICE" || (echo "build with --build-arg SERVICE=<ticker|sla|reminders|analytics|gateway|natsadmin>" && false)
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/service ${PACKAGE}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/service /service
USER nonroot:nonroot
ENTRYPOINT ["/service"]
