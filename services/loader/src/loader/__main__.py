from sales_common.server import serve

from loader.config import LoaderSettings
from loader.main import create_app

settings = LoaderSettings()  # read from the environment
serve(lambda: create_app(settings), settings)
