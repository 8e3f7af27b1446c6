from sales_common.server import serve

from dashboard.config import DashboardSettings
from dashboard.main import create_app

settings = DashboardSettings()  # read from the environment
serve(lambda: create_app(settings), settings)
