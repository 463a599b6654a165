FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir -e .
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --no-input
# data/media exists owned by mycelia so the artifacts volume mounted there is writable
RUN useradd --create-home mycelia && mkdir -p /app/data/media && chown -R mycelia /app/data
USER mycelia
EXPOSE 8000
CMD ["python", "-m", "mycelia_ops.serve"]
