# One image per service, built from this one Dockerfile:
#   docker build --build-arg SERVICE=gateway -t connect-chat-gateway .
# Copilot builds it from each service's manifest (image.build.args.SERVICE).
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build step:
# the image holds the production dependencies, the generated contracts and services/.

ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; none of them has an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ARG SERVICE
RUN test -n "${SERVICE}" || (echo "build with --build-arg SERVICE=<gateway|messaging|notification|persistence>" && false)
ENV NODE_ENV=production \
    SERVICE=${SERVICE} \
    HOST=0.0.0.0
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY gen ./gen
COPY services ./services
USER node
# Every service answers GET /healthz on its PORT (200 while SERVING, 503 while draining).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||'8080')+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# exec makes node PID 1, so the SIGTERM from ECS reaches it directly and starts the drain.
CMD ["sh", "-c", "exec node --disable-warning=TimeoutNegativeWarning services/${SERVICE}/main.ts"]
