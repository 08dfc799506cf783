# One image per service: docker build --build-arg SERVICE=gateway .
# The binaries are static and carry the time zone database, so the runtime image needs
# nothing but them.
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
ARG SERVICE
RUN test -n "$SERVICE" || (echo "build with --build-arg SERVICE=<ticker|sla|reminders|analytics|gateway>" && false)
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/service ./services/${SERVICE}/cmd/${SERVICE}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/service /service
USER nonroot:nonroot
ENTRYPOINT ["/service"]
