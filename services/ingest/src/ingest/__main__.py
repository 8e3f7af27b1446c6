from sales_common.server import serve

from ingest.config import IngestSettings
from ingest.main import create_app

settings = IngestSettings()  # read from the environment
serve(lambda: create_app(settings), settings)
