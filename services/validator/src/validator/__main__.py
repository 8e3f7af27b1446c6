from sales_common.server import serve

from validator.config import ValidatorSettings
from validator.main import create_app

settings = ValidatorSettings()  # read from the environment
serve(lambda: create_app(settings), settings)
