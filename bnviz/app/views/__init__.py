"""One module per view of the selected layer; ``VIEW_CLASSES`` in tab order."""

from bnviz.app.views.channels import ChannelsView
from bnviz.app.views.distribution import DistributionView
from bnviz.app.views.drift import DriftView
from bnviz.app.views.gamma_beta import GammaBetaView
from bnviz.app.views.history import HistoryView
from bnviz.app.views.layers import LayersView
from bnviz.app.views.overview import OverviewView
from bnviz.app.views.ranks import RanksView
from bnviz.app.views.train_eval import TrainEvalView

VIEW_CLASSES = {
    v.key: v
    for v in (
        DriftView,
        ChannelsView,
        DistributionView,
        HistoryView,
        GammaBetaView,
        TrainEvalView,
        OverviewView,
        LayersView,
        RanksView,
    )
}
