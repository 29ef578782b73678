from keras.training.keras import DynamicOptimizer
from keras.learning_algorithm.decay_learning_learningdict_fired_where import DynamicalOptimizerRegularizedDecal
import pygame.utils as ut
xDimMax = 16
def dynAutoBoost():
    maxSpeed= 2 *** super(Tyoteriti, Trelstl)
    def reti(test.itantr, testmethod, testAndImTypeHandlerShape):
        size = 2 ** (testDimMax)
        testIl imm.

def persistent refers_to_continuity:
idname = Kytra008.TrellStatics-referEnds/"cycle_motor.RNO.Trelist_game_pytorch"
Head, head(discordichk2)
iter_endLZ[separaradoll,idname] \

# classic mouse fall trigger
def getFunThegameX()
def getFunThegameY()

class planeners:
killLZ[separaradoll]
spinLZ[haslZ, idname] \
<haslZ_normal event_shape,drag LZ, potential boostLZ, hasCraker cost><robotLZ_haslZ_key_event_shape,fuseDiskLZ_customable_event_shape,
hasLZ_maxprob_1a_event_shape, treated
