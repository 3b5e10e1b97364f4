# The executor image of docker-compose.yml: Flower's SuperExec (which runs ServerApps and ClientApps)
# plus semfed's dependencies, with the CPU build of torch. Flower is already in the base image, so its
# line is dropped from pyproject.toml before installing (as Flower's Docker quickstart does).
ARG FLWR_VERSION=1.42.0
FROM flwr/superexec:${FLWR_VERSION}

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY semfed semfed
COPY clients clients
COPY server server
COPY strategies strategies
RUN sed -i '/"flwr\[simulation\]/d' pyproject.toml \
 && python -m pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 \
      --index-url https://download.pytorch.org/whl/cpu \
 && python -m pip install --no-cache-dir .

ENTRYPOINT ["flower-superexec"]
